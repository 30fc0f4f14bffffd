"""Process reward models: one interface (`PRM.score`), chosen by `prm.name`.

Implementations are imported lazily so that validating a config never loads a model library.
Several names share a class: the name is the published model (its conf/prm/<name>.yaml holds the
weights and format details), the class is the input format and how it runs.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hotncold.config import ModelConfig, PRMConfig
    from hotncold.engine.vllm_engine import Engine
    from hotncold.prm.base import PRM

# name -> "module:class"; each class is built as cls(cfg, engine=..., model=...)
REGISTRY: dict[str, str] = {
    "equation_checker": "hotncold.prm.equation_checker:EquationChecker",
    "self_certainty": "hotncold.prm.self_certainty:SelfCertainty",
    "judge": "hotncold.prm.generative:JudgePRM",
    "rlhflow_8b": "hotncold.prm.generative:RLHFlowPRM",
    "math_shepherd": "hotncold.prm.generative:MathShepherdPRM",
    "skywork_1.5b": "hotncold.prm.heads:SkyworkPRM",
    "skywork_7b": "hotncold.prm.heads:SkyworkPRM",
    "qwen_math_prm_7b": "hotncold.prm.heads:QwenMathPRM",
    "trl": "hotncold.prm.heads:TRLPRM",
}
PRM_NAMES = tuple(REGISTRY)
MODEL_FREE = ("equation_checker",)
"""PRMs that load no model at all."""
GENERATIVE = ("judge", "rlhflow_8b", "math_shepherd")
"""PRMs read from next-token probabilities: they can run on the generator's own engine."""
NEEDS_MODEL_PATH = ("trl",)
"""PRMs without published weights: the user names the checkpoint."""


def shares_generator(cfg: PRMConfig, model: ModelConfig | None) -> bool:
    """The PRM reads the generator model itself, so it uses the generator's engine."""
    if cfg.name == "self_certainty" or (cfg.name == "judge" and cfg.model_path is None):
        return True
    return (
        cfg.name in GENERATIVE
        and model is not None
        and cfg.model_path is not None
        and cfg.model_path == model.path
    )


def needs_own_engine(cfg: PRMConfig, model: ModelConfig | None) -> bool:
    """The PRM starts an engine of its own in this process (and so needs memory beside it)."""
    return (
        cfg.server_url is None and cfg.name not in MODEL_FREE and not shares_generator(cfg, model)
    )


def generator_config(model: ModelConfig, cfg: PRMConfig) -> ModelConfig:
    """The generator's engine settings, leaving room for a PRM engine in the same process."""
    from hotncold.config import GPU_MEMORY_SHARED
    from hotncold.engine.vllm_engine import on_cpu

    if on_cpu() or not needs_own_engine(cfg, model):
        return model  # CPU engines size their KV cache in GiB, not as a share
    share = round(GPU_MEMORY_SHARED - cfg.gpu_memory_utilization, 4)
    if model.gpu_memory_utilization <= share:
        return model
    return dataclasses.replace(model, gpu_memory_utilization=share)


def build_prm(
    cfg: PRMConfig, engine: Engine | None = None, model: ModelConfig | None = None
) -> PRM:
    """The PRM `cfg` names: served by `cfg.server_url` when set, else loaded here.

    `engine` and `model` are the generator's: PRMs that read the generator use them, and a PRM
    whose weights are the generator's shares its engine instead of loading them twice.
    """
    if cfg.server_url:
        from hotncold.prm.http_client import RemotePRM

        return RemotePRM(cfg)
    module, cls = REGISTRY[cfg.name].split(":")
    return getattr(importlib.import_module(module), cls)(cfg, engine=engine, model=model)


def preflight(cfg: PRMConfig) -> None:
    """Checks that need no model: a configured PRM server must answer (ConfigError if not)."""
    if cfg.server_url:
        from hotncold.prm.http_client import check_server

        check_server(cfg)
