"""The Hydra edge of a sweep folder: which jobs a sweep holds, and launching some of them again.

`python -m hotncold -m ...` writes `multirun.yaml` (the sweep's config and its command-line
overrides) into the sweep folder, and `.hydra/overrides.yaml` into every job's run directory.
`expected_jobs` expands the stored overrides exactly as Hydra's basic sweeper did, so jobs that
never started are known too. `relaunch` sends chosen jobs through the launcher the sweep used
(composed again from the same overrides), calling the launcher directly rather than rerunning
the sweep: the other jobs are left alone and `multirun.yaml` keeps describing the whole sweep.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import hotncold.config.hydra  # noqa: F401  (the schema and resolvers the jobs' configs need)
from hotncold.config import ConfigError

# The config groups ship inside the package (hotncold/conf), wherever it is installed.
CONF_DIR = Path(str(importlib.resources.files("hotncold") / "conf"))
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"

log = logging.getLogger(__name__)

Job = tuple[str, ...]
"""One job: its override strings, as Hydra's sweeper produced them."""


def read_multirun(sweep_dir: Path) -> DictConfig:
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{sweep_dir} has no multirun.yaml, so it is not a sweep folder; give the folder "
            "`python -m hotncold -m ...` wrote (multirun/<sweep_name>)"
        )
    return OmegaConf.load(path)


def expected_jobs(sweep_dir: Path) -> list[Job]:
    """Every job of the sweep, in launch order (the cross product of the swept overrides)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    stored = read_multirun(sweep_dir)
    sweeper = stored.hydra.sweeper
    if sweeper.get("_target_") != BASIC_SWEEPER:
        raise ConfigError(
            f"{sweep_dir} was swept by {sweeper.get('_target_')}; only Hydra's basic sweeper "
            "(the default) lists its jobs up front"
        )
    params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
    arguments = params + list(stored.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=hydra_app(stored.hydra.job.name).config_loader)
    batches = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)
    return [tuple(job) for batch in batches for job in batch]


def relaunch(sweep_dir: Path, jobs: list[Job], extra: Sequence[str] = ()) -> list[str]:
    """Run `jobs` again through the sweep's own launcher; returns the errors jobs raised.

    The launcher is composed from the sweep's stored overrides, plus `extra` (only `hydra.*`
    settings, e.g. `hydra.launcher.timeout_min=600`: anything else would change the jobs).
    Launchers block until their jobs end, as `python -m hotncold -m` does; submitit's raise for
    the first job that did not finish (the others still run to their end).
    """
    from hydra._internal.callbacks import Callbacks
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobStatus
    from hydra.types import HydraContext, RunMode

    for override in extra:
        if not override.lstrip("+~").startswith("hydra."):
            raise ConfigError(
                f"{override!r} would change the jobs themselves; a resubmission only takes "
                "launcher settings (hydra.launcher.timeout_min=600, ...)"
            )
    if not jobs:
        return []
    stored = read_multirun(sweep_dir)
    hydra = hydra_app(stored.hydra.job.name)
    overrides = [
        *stored.hydra.overrides.hydra,
        f"hydra.sweep.dir={Path(sweep_dir).resolve()}",  # the same folder from any cwd
        *extra,
        *stored.hydra.overrides.task,
    ]
    config = hydra.compose_config(
        config_name=stored.hydra.job.config_name,
        overrides=overrides,
        run_mode=RunMode.MULTIRUN,
        with_log_configuration=True,
    )
    context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(config))
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=context, task_function=task, config=config
    )
    log.info("relaunching %d jobs through %s", len(jobs), config.hydra.launcher._target_)
    errors = []
    for ret in launcher.launch([list(job) for job in jobs], initial_job_idx=0):
        if ret.status != JobStatus.COMPLETED:
            try:
                ret.return_value  # noqa: B018  (raises the job's error)
            except Exception as error:
                errors.append(f"{type(error).__name__}: {error}".splitlines()[0])
    return errors


def task(cfg: Any) -> Any:
    """The task a relaunched job runs: what `python -m hotncold` runs (importable by name, so
    submitit can pickle it)."""
    from hotncold.experiment.run import run

    return run(cfg)


def hydra_app(job_name: str) -> Any:
    """A Hydra instance on hotncold's conf/, as `@hydra.main` sets one up."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    return Hydra.create_main_hydra2(
        task_name=job_name, config_search_path=create_config_search_path(str(CONF_DIR))
    )
