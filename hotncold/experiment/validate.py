"""The one place a run's configuration is checked, once, before any dataset or model loads.

Each component owns the rules about its own settings and this module runs them all, in this
order (the first broken rule stops the run with one line naming the fix): the run's own
settings (budget, batch), then temperature (`search.temperature`), approach
(`search.registry`), model and prompt (`engine.rules`), PRM (`prm.registry`), dataset
(`data.rules`), metrics, and output (`hub.rules`). What needs the network or the files (a PRM
server, the hub, a dataset's columns) is checked right after, still before any model loads.
"""

from __future__ import annotations

from hotncold.config import Config, ConfigError
from hotncold.data.rules import check_dataset
from hotncold.engine.rules import check_model, check_prompt
from hotncold.hub.rules import check_output
from hotncold.prm.registry import check_prm
from hotncold.search.registry import check_approach
from hotncold.search.temperature import check_temperature


def validate(cfg: Config) -> None:
    """Raise ConfigError naming the fix for anything the schema types cannot catch."""
    if cfg.n < 1:
        raise ConfigError(f"n={cfg.n}: the budget must be at least 1; set n=1 or more")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size}: set batch_size=1 or more")
    if cfg.source_prm is not None:
        raise ConfigError(
            "source_prm is set only by python -m hotncold.rescore (a re-scored run's source "
            "PRM); remove it, or re-score a finished run: python -m hotncold.rescore <dir> prm=..."
        )
    if any(t <= 0 for t in cfg.metrics.selection_temperatures):
        raise ConfigError(
            "metrics.selection_temperatures must all be positive (tau -> 0 is `naive`); "
            "e.g. metrics.selection_temperatures=[0.01,0.1,1.0]"
        )
    if cfg.cluster.requeue_lock_wait_s < 0:
        raise ConfigError("cluster.requeue_lock_wait_s must be 0 or more (seconds)")
    check_temperature(cfg.temperature, cfg.approach, cfg.n)
    check_approach(cfg.approach, cfg.n)
    check_model(cfg.model)
    check_prompt(cfg.prompt)
    check_prm(cfg.prm, cfg.model)
    check_dataset(cfg.dataset)
    if cfg.metrics.num_subsets < 1:
        raise ConfigError("metrics.num_subsets must be at least 1")
    check_output(cfg.output)
