"""The only module that uses Hydra's private API (`hydra._internal`), kept to four calls.

Relaunching some jobs of a sweep (`hotncold.cluster.sweep`) needs what Hydra's public API does
not offer: a Hydra instance on hotncold's config folder as `@hydra.main` builds one, the basic
sweeper's expansion of a sweep into its jobs (to know the jobs that never started), a config
composed for a multirun, and the launcher it names set up with Hydra's callbacks. Everything
else uses public API. tests/test_hydra_private.py pins the behaviour relied on here, so a Hydra
upgrade that changes it fails there first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hydra._internal.callbacks import Callbacks
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
"""The `_target_` of Hydra's default sweeper, as multirun.yaml records it."""


@contextmanager
def app(job_name: str, conf_dir: str) -> Iterator[Hydra]:
    """A Hydra instance on the config folder `conf_dir`, as `@hydra.main` sets one up, for the
    `with` block only: Hydra keeps one instance per process in global state, so it is reset
    before and cleared after (a caller that composes afterwards, e.g. `initialize_config_dir`,
    would otherwise be refused with "GlobalHydra is already initialized")."""
    GlobalHydra.instance().clear()
    try:
        yield Hydra.create_main_hydra2(
            task_name=job_name, config_search_path=create_config_search_path(conf_dir)
        )
    finally:
        GlobalHydra.instance().clear()


def expand(hydra: Hydra, arguments: Sequence[str]) -> list[list[str]]:
    """Every job of a basic-sweeper sweep over `arguments` (the sweeper's params, then the
    command line's overrides), in launch order: the cross product of the swept values, a key
    given twice swept with its last value in its first place."""
    parser = OverridesParser.create(config_loader=hydra.config_loader)
    batches = BasicSweeper.split_arguments(parser.parse_overrides(list(arguments)), None)
    return [list(job) for batch in batches for job in batch]


def compose_multirun(hydra: Hydra, config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The config a `-m` run of `config_name` with `overrides` composes (Hydra's part included)."""
    return hydra.compose_config(
        config_name=config_name,
        overrides=list(overrides),
        run_mode=RunMode.MULTIRUN,
        with_log_configuration=True,
    )


def launcher(hydra: Hydra, config: DictConfig, task_function: Callable[[Any], Any]) -> Launcher:
    """The launcher `config` names (`hydra.launcher`), with Hydra's callbacks, as a multirun
    sets it up; its `launch(jobs, initial_job_idx)` runs jobs of override lists."""
    context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(config))
    return Plugins.instance().instantiate_launcher(
        hydra_context=context, task_function=task_function, config=config
    )
