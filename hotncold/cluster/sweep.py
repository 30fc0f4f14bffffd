"""The Hydra edge of a sweep folder: which jobs a sweep holds, and launching some of them again.

`python -m hotncold -m ...` writes `multirun.yaml` (the sweep's config and its command-line
overrides) into the sweep folder, and `.hydra/overrides.yaml` into every job's run directory.
`expected_jobs` expands the stored overrides exactly as the sweep's sweeper did (Hydra's basic
sweeper or hotncold's union sweeper, `cluster.sweep_grids`), so jobs that never started are
known too. `relaunch` sends chosen jobs through the launcher the sweep used
(composed again from the same overrides), calling the launcher directly rather than rerunning
the sweep: the other jobs are left alone and `multirun.yaml` keeps describing the whole sweep.
What needs Hydra's private API is in `hotncold.cluster.hydra_private`.
"""

from __future__ import annotations

import importlib.resources
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from hydra.core.utils import JobStatus
from omegaconf import DictConfig, OmegaConf

import hotncold.config.hydra  # noqa: F401  (the schema and resolvers the jobs' configs need)
from hotncold.cluster import hydra_private, sweep_grids
from hotncold.config import ConfigError
from hotncold.experiment.run import run

# The config groups ship inside the package (hotncold/conf), wherever it is installed.
CONF_DIR = Path(str(importlib.resources.files("hotncold") / "conf"))

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
    """Every job of the sweep, in launch order: what its sweeper launched (the basic sweeper's
    cross product, or the union sweeper's grids), expanded by the sweeper's own expansion
    (`sweep_grids.sweeper_jobs`) from the stored `hydra.sweeper` and command line."""
    stored = read_multirun(sweep_dir)
    with hydra_app(stored.hydra.job.name) as hydra:
        try:
            jobs = sweep_grids.sweeper_jobs(
                hydra.config_loader, stored.hydra.sweeper, list(stored.hydra.overrides.task)
            )
        except ConfigError as error:
            raise ConfigError(f"{sweep_dir}: {error}") from error
    return [tuple(job) for job in jobs]


def relaunch(sweep_dir: Path, jobs: list[Job], extra: Sequence[str] = ()) -> list[str]:
    """Run `jobs` again through the sweep's own launcher; returns the errors jobs raised.

    The launcher is composed from the sweep's stored overrides, plus `extra` (only `hydra.*`
    settings, e.g. `hydra.launcher.timeout_min=600`: anything else would change the jobs).
    Launchers block until their jobs end, as `python -m hotncold -m` does; submitit's raise for
    the first job that did not finish (the others still run to their end).
    """
    for override in extra:
        if not override.lstrip("+~").startswith("hydra."):
            raise ConfigError(
                f"{override!r} would change the jobs themselves; a resubmission only takes "
                "launcher settings (hydra.launcher.timeout_min=600, ...)"
            )
    if not jobs:
        return []
    stored = read_multirun(sweep_dir)
    with hydra_app(stored.hydra.job.name) as hydra:
        overrides = [
            *stored.hydra.overrides.hydra,
            f"hydra.sweep.dir={Path(sweep_dir).resolve()}",  # the same folder from any cwd
            *extra,
            *stored.hydra.overrides.task,
        ]
        config = hydra_private.compose_multirun(hydra, stored.hydra.job.config_name, overrides)
        launcher = hydra_private.launcher(hydra, config, task)
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
    return run(cfg)


def hydra_app(job_name: str) -> AbstractContextManager[Any]:
    """A Hydra instance on hotncold's config groups, as `@hydra.main` sets one up, for a `with`
    block (Hydra's global state is cleared when it ends)."""
    return hydra_private.app(job_name, str(CONF_DIR))
