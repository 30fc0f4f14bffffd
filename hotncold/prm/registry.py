"""Which PRM `prm.name` picks, what each kind needs, and the rules of the `prm` settings.

Several names share a class: the name is the published model (its hotncold/conf/prm/<name>.yaml
holds the weights and format details), the class is the input format and how it runs. Each kind
is one `PRMKind` entry: the class, which model it reads, and its own rules; the rules every PRM
shares come first (`check_prm`). Implementations are imported only when built, so validating a
config never loads a model library.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from hotncold.config import ConfigError, ModelConfig, PRMConfig
from hotncold.config.errors import check_literal_escapes
from hotncold.engine import memory, model_facts, vllm_engine
from hotncold.engine.requests import Engine
from hotncold.engine.rules import DTYPES
from hotncold.prm import http_client
from hotncold.prm.base import AGG_STRATEGIES, PRM

log = logging.getLogger(__name__)

GPU_MEMORY_SHARED = 0.95
"""Most of an accelerator that a generator and an in-process PRM engine take together."""


def _needs_model_path(p: PRMConfig) -> None:
    if not p.model_path:
        raise ConfigError(
            f"prm={p.name} needs prm.model_path (the trained checkpoint: a folder or hub id)"
        )


def _judge_template_names_what_it_judges(p: PRMConfig) -> None:
    for key in ("{problem}", "{steps}"):
        if key not in p.judge_template:
            raise ConfigError(f"prm.judge_template must contain {key}")


@dataclass(frozen=True)
class PRMKind:
    """One `prm.name`: its implementation, the model it reads, and the rules only it has."""

    target: str
    """"module:class" of the implementation, built as cls(cfg, engine=..., model=...)."""
    model_free: bool = False
    """Loads no model at all (a verifier written in Python)."""
    generative: bool = False
    """Read from next-token probabilities: it can run on the generator's own engine when its
    weights are the generator's."""
    reads_generator: bool = False
    """Always reads the generator model itself (on the generator's engine)."""
    generator_without_path: bool = False
    """Reads the generator when `prm.model_path` is null."""
    rules: tuple[Callable[[PRMConfig], None], ...] = ()
    """This kind's own checks, run after the ones every PRM shares."""


KINDS: dict[str, PRMKind] = {
    "equation_checker": PRMKind("hotncold.prm.equation_checker:EquationChecker", model_free=True),
    "self_certainty": PRMKind("hotncold.prm.self_certainty:SelfCertainty", reads_generator=True),
    "judge": PRMKind(
        "hotncold.prm.generative:JudgePRM",
        generative=True,
        generator_without_path=True,
        rules=(_judge_template_names_what_it_judges,),
    ),
    "rlhflow_8b": PRMKind("hotncold.prm.generative:RLHFlowPRM", generative=True),
    "math_shepherd": PRMKind("hotncold.prm.generative:MathShepherdPRM", generative=True),
    "skywork_1.5b": PRMKind("hotncold.prm.heads:SkyworkPRM"),
    "skywork_7b": PRMKind("hotncold.prm.heads:SkyworkPRM"),
    "qwen_math_prm_7b": PRMKind("hotncold.prm.heads:QwenMathPRM"),
    # no published weights: the user names the checkpoint
    "trl": PRMKind("hotncold.prm.heads:TRLPRM", rules=(_needs_model_path,)),
}
REGISTRY: dict[str, str] = {name: kind.target for name, kind in KINDS.items()}
"""name -> "module:class"."""
PRM_NAMES = tuple(KINDS)


def shares_generator(cfg: PRMConfig, model: ModelConfig | None) -> bool:
    """The PRM reads the generator model itself, so it uses the generator's engine."""
    kind = KINDS.get(cfg.name)
    if kind is None:
        return False
    if kind.reads_generator or (kind.generator_without_path and cfg.model_path is None):
        return True
    return (
        kind.generative
        and model is not None
        and cfg.model_path is not None
        and cfg.model_path == model.path
    )


def needs_own_engine(cfg: PRMConfig, model: ModelConfig | None) -> bool:
    """The PRM starts an engine of its own in this process (and so needs memory beside it)."""
    kind = KINDS.get(cfg.name)
    model_free = kind is not None and kind.model_free
    return cfg.server_url is None and not model_free and not shares_generator(cfg, model)


def generator_config(
    model: ModelConfig, cfg: PRMConfig, batch: memory.Batch | None = None
) -> ModelConfig:
    """The generator's engine settings, leaving room for a PRM engine in the same process.

    On GPUs the two split the accelerator by share. On the CPU the generator's KV cache, when
    unset, is sized for `batch` within the memory left after the PRM engine's (`memory`).
    """
    if vllm_engine.on_cpu():
        if batch is None:
            return model
        sized, plan = vllm_engine.sized_for(model, batch, cpu_bytes_beside(cfg, model))
        if plan is not None and plan.capped:
            log.warning(
                "the batch needs a %.1f GiB KV cache but this machine can spare %.1f GiB: vLLM "
                "will preempt and recompute (slower, same results); lower batch_size or n",
                plan.need_bytes / memory.GIB,
                plan.gib,
            )
        elif plan is not None:
            log.info(
                "KV cache %g GiB for %d problems x %d samples (they need %.2f GiB)",
                plan.gib,
                batch.problems,
                batch.n,
                plan.need_bytes / memory.GIB,
            )
        return sized
    if not needs_own_engine(cfg, model):
        return model
    share = round(GPU_MEMORY_SHARED - cfg.gpu_memory_utilization, 4)
    if model.gpu_memory_utilization <= share:
        return model
    return dataclasses.replace(model, gpu_memory_utilization=share)


UNKNOWN_PRM_WEIGHTS = 2 * memory.GIB
"""Assumed weight bytes of a PRM whose config.json is not on this machine yet."""


def cpu_bytes_beside(cfg: PRMConfig, model: ModelConfig) -> int:
    """CPU memory the PRM's own engine will take beside the generator (0 when it has none):
    its KV cache, its weights and an engine's runtime."""
    if not needs_own_engine(cfg, model):
        return 0
    config = model_facts.read_config(cfg.model_path) if cfg.model_path else None
    params = model_facts.parameter_count(config) if config else None
    dtype = "float32" if cfg.dtype == "auto" else cfg.dtype
    weights = model_facts.weight_bytes(params, dtype) if params else UNKNOWN_PRM_WEIGHTS
    return int(cfg.cpu_kv_cache_gib * memory.GIB) + weights + memory.ENGINE_RUNTIME_BYTES


def build_prm(
    cfg: PRMConfig, engine: Engine | None = None, model: ModelConfig | None = None
) -> PRM:
    """The PRM `cfg` names: served by `cfg.server_url` when set, else loaded here.

    `engine` and `model` are the generator's: PRMs that read the generator use them, and a PRM
    whose weights are the generator's shares its engine instead of loading them twice. The
    class gets `engine` only then (None: it loads its own weights, if it has any).
    """
    if cfg.server_url:
        return http_client.RemotePRM(cfg)
    kind = KINDS[cfg.name]
    on_generator = shares_generator(cfg, model)
    if on_generator and kind.generative and engine is None:
        raise ValueError(f"prm={cfg.name} reads the generator: pass its engine")
    module, cls = kind.target.split(":")
    return getattr(importlib.import_module(module), cls)(
        cfg, engine=engine if on_generator else None, model=model
    )


def preflight(cfg: PRMConfig) -> None:
    """Checks that need no model: a configured PRM server must answer (ConfigError if not)."""
    if cfg.server_url:
        http_client.check_server(cfg)


def check_prm(p: PRMConfig, model: ModelConfig | None = None) -> None:
    """Raise ConfigError naming the fix for a PRM setting that cannot work: the rules every PRM
    shares, then its kind's own, then the memory it would share with the generator `model`
    (None: the PRM runs alone, as in a PRM server)."""
    if p.name not in PRM_NAMES:
        raise ConfigError(f"prm.name={p.name!r} is unknown; use one of {', '.join(PRM_NAMES)}")
    if p.agg_strategy not in AGG_STRATEGIES:
        raise ConfigError(
            f"prm.agg_strategy={p.agg_strategy!r} is unknown; "
            f"use one of {', '.join(AGG_STRATEGIES)}"
        )
    if p.batch_size < 1:
        raise ConfigError("prm.batch_size must be at least 1")
    if p.server_url is not None:
        if not p.server_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"prm.server_url={p.server_url!r} is not an http(s) URL; "
                "use e.g. prm.server_url=http://localhost:8088"
            )
        return  # the server validated its own PRM settings when it started
    if p.dtype not in DTYPES:
        raise ConfigError(f"prm.dtype={p.dtype!r}: use auto, float32, float16 or bfloat16")
    if p.max_model_len < 16:
        raise ConfigError(f"prm.max_model_len={p.max_model_len} is too small; use e.g. 8192")
    if p.cpu_kv_cache_gib <= 0:
        raise ConfigError("prm.cpu_kv_cache_gib must be positive (e.g. 0.5)")
    if p.block_size is not None and (p.block_size < 1 or p.block_size % 16):
        raise ConfigError(f"prm.block_size={p.block_size}: use a multiple of 16 (32 on CPUs)")
    if p.positive_token == p.negative_token:
        raise ConfigError("prm.positive_token and prm.negative_token must differ")
    if p.step_separator == "":
        raise ConfigError("prm.step_separator is empty; use null for the model's own separator")
    check_literal_escapes("prm.step_separator", p.step_separator)
    for rule in KINDS[p.name].rules:
        rule(p)
    if not 0 < p.gpu_memory_utilization <= 1:
        raise ConfigError(
            f"prm.gpu_memory_utilization={p.gpu_memory_utilization} must be in (0, 1]"
        )
    if model is not None and needs_own_engine(p, model):
        left = GPU_MEMORY_SHARED - p.gpu_memory_utilization
        if left < 0.1:
            raise ConfigError(
                f"prm.gpu_memory_utilization={p.gpu_memory_utilization:g} leaves the generator "
                f"{max(left, 0):.2f} of the accelerator they share; lower it (e.g. 0.4) or serve "
                "the PRM elsewhere (prm.server_url)"
            )
