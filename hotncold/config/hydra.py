"""The Hydra edge of configuration: registers the typed schemas, the run-name resolvers and
hotncold's union sweeper (`hydra/sweeper=union`).

Imported by the commands (`hotncold.__main__`, `prm_server`, `rescore`, `train_prm`), by the
sweep tools (`hotncold.cluster.sweep`) and by tests that compose configs; the core never
imports it (nor Hydra).
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from omegaconf import OmegaConf

from hotncold.config import (
    APPROACH_SCHEMAS,
    PRM_SCHEMAS,
    Config,
    PRMConfig,
    PRMServerConfig,
    RescoreConfig,
)
from hotncold.experiment.naming import config_hash, run_name
from hotncold.train_prm.config import TrainPRMConfig

SCHEMA_NAME = "hotncold_schema"
TRAIN_SCHEMA_NAME = "train_prm_schema"
SERVER_SCHEMA_NAME = "hotncold_prm_server_schema"
RESCORE_SCHEMA_NAME = "hotncold_rescore_schema"


def _run_name(*, _root_: Any) -> str:
    # Resolve every result-determining key but not the ones that point back at the run name.
    keys = [k for k in _root_ if k not in ("run_name", "out_dir", "hydra")]
    return run_name(
        {
            k: OmegaConf.to_container(_root_[k], resolve=True)
            if OmegaConf.is_config(_root_[k])
            else _root_[k]
            for k in keys
        }
    )


def _train_run_name(*, _root_: Any) -> str:
    keys = [k for k in _root_ if k not in ("run_name", "out_dir", "overrides", "hydra")]
    resolved = {
        k: OmegaConf.to_container(_root_[k], resolve=True)
        if OmegaConf.is_config(_root_[k])
        else _root_[k]
        for k in keys
    }
    base = str(resolved["train"]["base_model"]).rstrip("/").split("/")[-1].split(":")[-1]
    return f"{resolved['train']['name']}_{base}_seed{resolved['seed']}_{config_hash(resolved)}"


def register() -> None:
    store = ConfigStore.instance()
    # The top-level schemas type `prm` as the shared base, so that any kind's option (typed by
    # its own schema, a subclass) can merge into it; their Python default is the equation
    # checker's schema, which no other kind's would merge into.
    store.store(name=SCHEMA_NAME, node=Config(prm=PRMConfig()))
    store.store(name=TRAIN_SCHEMA_NAME, node=TrainPRMConfig)
    store.store(name=SERVER_SCHEMA_NAME, node=PRMServerConfig(prm=PRMConfig()))
    store.store(name=RESCORE_SCHEMA_NAME, node=RescoreConfig(prm=PRMConfig()))
    for name, schema in PRM_SCHEMAS.items():  # conf/prm/<option>.yaml: defaults [schema_<name>]
        store.store(group="prm", name=f"schema_{name}", node=schema)
    for name, schema in APPROACH_SCHEMAS.items():  # conf/approach/<name>.yaml likewise
        store.store(group="approach", name=f"schema_{name}", node=schema)
    if not OmegaConf.has_resolver("hnc.run_name"):
        OmegaConf.register_new_resolver("hnc.run_name", _run_name, use_cache=False)
    if not OmegaConf.has_resolver("hnc.train_run_name"):
        OmegaConf.register_new_resolver("hnc.train_run_name", _train_run_name, use_cache=False)
    _register_union_sweeper()


def _register_union_sweeper() -> None:
    # Hydra finds plugins by walking the hydra_plugins namespace package, which an editable
    # install (PEP 660, setuptools >= 64) hides from that walk though it imports fine
    # (hydra#3252): registered by hand, `hydra/sweeper=union` works however hotncold is installed.
    try:
        from hydra_plugins.hotncold_sweeper.union_sweeper import UnionSweeper
    except ModuleNotFoundError as error:
        raise ImportError(
            "hotncold's Hydra plugin hydra_plugins/hotncold_sweeper is not installed beside "
            "the hotncold package; reinstall hotncold (pip install -e . in the checkout)"
        ) from error
    Plugins.instance().register(UnionSweeper)


register()
