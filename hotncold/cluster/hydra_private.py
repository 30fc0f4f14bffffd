"""The only module that uses Hydra's private API (`hydra._internal`), kept to five uses.

Relaunching some jobs of a sweep (`hotncold.cluster.sweep`) needs what Hydra's public API does
not offer: a Hydra instance on hotncold's config folder as `@hydra.main` builds one, the basic
sweeper's expansion of a sweep into its jobs (to know the jobs that never started), a config
composed for a multirun, and the launcher it names set up with Hydra's callbacks; and for the
union sweeper (`hydra/sweeper=union`), the basic sweeper itself: `ListedJobsSweeper` is a basic
sweeper launching a job list of its own, relying on `BasicSweeper.sweep` taking its jobs from
`self.split_arguments(overrides, self.max_batch_size)`. Everything else uses public API.
tests/test_hydra_private.py pins the behaviour relied on here, so a Hydra upgrade that changes
it fails there first.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from hydra._internal.callbacks import Callbacks
from hydra._internal.core_plugins import basic_sweeper
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, RunMode, TaskFunction
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


def expand(config_loader: ConfigLoader, arguments: Sequence[str]) -> list[list[str]]:
    """Every job of a basic-sweeper sweep over `arguments` (the sweeper's params, then the
    command line's overrides), in launch order: the cross product of the swept values, a key
    given twice swept with its last value in its first place. `config_loader`: a Hydra
    instance's (`Hydra.config_loader`) or a sweeper's (`hydra_context.config_loader`)."""
    parser = OverridesParser.create(config_loader=config_loader)
    batches = BasicSweeper.split_arguments(parser.parse_overrides(list(arguments)), None)
    return [list(job) for batch in batches for job in batch]


class ListedJobsSweeper(Sweeper):
    """Hydra's basic sweeper (it saves multirun.yaml, checks every job composes, launches the
    jobs in batches of `max_batch_size`) launching the jobs `jobs(arguments)` lists instead of
    the cross product of its params and the command line. Abstract: a sweeper says which jobs.

    It wraps a basic sweeper rather than subclassing it: Hydra's plugin scan executes again
    every plugin module already imported, so a subclass made before the scan has a stale base
    (BasicSweeper.__init__ then fails with "super(type, obj): obj must be an instance or
    subtype of type"). The basic sweeper is built from its module at `setup`, after any scan.
    """

    def __init__(self, max_batch_size: int | None, params: Mapping[str, str] | None) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None
        self._basic: BasicSweeper | None = None

    @abstractmethod
    def jobs(self, arguments: list[str]) -> list[list[str]]:
        """The override lists of the jobs to launch, in launch order, given the command line's
        overrides (`arguments`)."""

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.hydra_context, self.config = hydra_context, config
        self._basic = basic_sweeper.BasicSweeper(self.max_batch_size, self.params)
        self._basic.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = self._basic.launcher

    def sweep(self, arguments: list[str]) -> Any:
        assert self._basic is not None, "Hydra sets a sweeper up before it sweeps"
        jobs = self.jobs(list(arguments))

        def split_arguments(overrides: object, max_batch_size: int | None) -> list[list[list[str]]]:
            # BasicSweeper.sweep takes its jobs from self.split_arguments(parsed overrides,
            # self.max_batch_size): the basic sweeper's cross product, replaced here
            if max_batch_size is None:
                return [jobs]
            return list(BasicSweeper.split_overrides_to_chunks(jobs, max_batch_size))

        self._basic.split_arguments = split_arguments  # type: ignore[method-assign]
        return self._basic.sweep(list(arguments))

    @property
    def config_loader(self) -> ConfigLoader:
        """The loader of the Hydra run this sweeper serves (set up by Hydra before `sweep`)."""
        assert self.hydra_context is not None, "Hydra sets a sweeper up before it sweeps"
        return self.hydra_context.config_loader


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
