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
from typing import Any

from omegaconf import OmegaConf

from hotncold.config import (
    APPROACH_SCHEMAS,
    ConfigError,
    EquationCheckerConfig,
    GenerativePRMConfig,
    HeadPRMConfig,
    JudgePRMConfig,
    MathShepherdConfig,
    ModelConfig,
    ModelPRMConfig,
    PRMConfig,
    PromptConfig,
    QwenMathPRMConfig,
    SelfCertaintyConfig,
)
from hotncold.config.errors import check_literal_escapes
from hotncold.engine import hf_cache, kv_cache, memory, model_facts, vllm_engine
from hotncold.engine.context import allowed_length
from hotncold.engine.memory import GPU_MEMORY_SHARED, EngineNeed, Split, gib
from hotncold.engine.requests import Engine
from hotncold.engine.rules import DTYPES
from hotncold.engine.weights import check_model_path
from hotncold.prm import http_client
from hotncold.prm.base import AGG_STRATEGIES, PRM
from hotncold.prm.loading import as_loaded_by_vllm

log = logging.getLogger(__name__)

FALLBACK_PRM_SHARE = 0.4
"""The PRM's share of the card when its size cannot be read (no config.json, an architecture
`model_facts` does not count): the fixed split hotncold used before sizing from the weights."""
LONE_SHARE = 0.9
"""A PRM alone on its card (a PRM server) takes what a lone generator takes by default."""


def _needs_model_path(p: PRMConfig) -> None:
    if not model_path(p):
        raise ConfigError(
            f"prm={p.name} needs prm.model_path (the trained checkpoint: a folder or hub id)"
        )


def _judge_template_names_what_it_judges(p: PRMConfig) -> None:
    assert isinstance(p, JudgePRMConfig)  # checked against the kind's schema first
    for key in ("{problem}", "{steps}"):
        if key not in p.judge_template:
            raise ConfigError(f"prm.judge_template must contain {key}")


@dataclass(frozen=True)
class PRMKind:
    """One `prm.name`: its implementation, the model it reads, and the rules only it has."""

    target: str
    """"module:class" of the implementation, built as
    cls(cfg, engine=..., model=..., prompt=...)."""
    schema: type[PRMConfig]
    """Its settings' schema (`hotncold.config.schemas`): the option's YAML names it."""
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
    runner: str = "generate"
    """vLLM's runner for its engine: `generate` (next-token log-probabilities) or `pooling`
    (a head read at every token)."""
    converts: bool = False
    """Its checkpoint is rewritten once into an architecture vLLM has (Skywork's value head
    becomes a 1-label token-classification head), so vLLM loads the converted layout."""
    logits: str = "none"
    """Where it computes vocabulary logits, for FLOPs accounting: `step` (one row per scored
    step: the label tokens' probabilities after each step's prompt), `token` (at every token it
    processes: prompt log-probabilities) or `none` (a classification head, or no model)."""


KINDS: dict[str, PRMKind] = {
    "equation_checker": PRMKind(
        "hotncold.prm.equation_checker:EquationChecker", EquationCheckerConfig, model_free=True
    ),
    "self_certainty": PRMKind(
        "hotncold.prm.self_certainty:SelfCertainty",
        SelfCertaintyConfig,
        reads_generator=True,
        logits="token",
    ),
    "judge": PRMKind(
        "hotncold.prm.generative:JudgePRM",
        JudgePRMConfig,
        generative=True,
        generator_without_path=True,
        rules=(_judge_template_names_what_it_judges,),
        logits="step",
    ),
    "rlhflow_8b": PRMKind(
        "hotncold.prm.generative:RLHFlowPRM", GenerativePRMConfig, generative=True, logits="step"
    ),
    "math_shepherd": PRMKind(
        "hotncold.prm.generative:MathShepherdPRM",
        MathShepherdConfig,
        generative=True,
        logits="step",
    ),
    "skywork_1.5b": PRMKind(
        "hotncold.prm.heads:SkyworkPRM", HeadPRMConfig, runner="pooling", converts=True
    ),
    "skywork_7b": PRMKind(
        "hotncold.prm.heads:SkyworkPRM", HeadPRMConfig, runner="pooling", converts=True
    ),
    "qwen_math_prm_7b": PRMKind(
        "hotncold.prm.heads:QwenMathPRM", QwenMathPRMConfig, runner="pooling"
    ),
    # no published weights: the user names the checkpoint
    "trl": PRMKind(
        "hotncold.prm.heads:TRLPRM", HeadPRMConfig, rules=(_needs_model_path,), runner="pooling"
    ),
}
REGISTRY: dict[str, str] = {name: kind.target for name, kind in KINDS.items()}
"""name -> "module:class"."""
PRM_NAMES = tuple(KINDS)


def model_path(cfg: PRMConfig) -> str | None:
    """The PRM's own weights; None for kinds that have none (the equation checker, and
    self-certainty, which reads the generator)."""
    return cfg.model_path if isinstance(cfg, ModelPRMConfig) else None


def schema_for(name: str) -> type[PRMConfig]:
    """The schema of `prm.name=name`'s settings; ConfigError for an unknown name."""
    if name not in KINDS:
        raise ConfigError(f"prm.name={name!r} is unknown; use one of {', '.join(PRM_NAMES)}")
    return KINDS[name].schema


def typed_merge(schema: Any, cfg: Any) -> Any:
    """`cfg` merged into `schema` (a Config or PRMServerConfig whose `prm` is the shared base)
    with its `prm` typed by its kind's schema, as `prm=<name>` types it: a plain dict (a stored
    config.yaml) gets the same types and checks as a composed config."""
    if not OmegaConf.is_config(cfg):
        cfg = OmegaConf.create(cfg)
    typed = OmegaConf.get_type(cfg, "prm") if "prm" in cfg else None
    if not (isinstance(typed, type) and issubclass(typed, PRMConfig) and typed is not PRMConfig):
        # plain values: typed by their name, as `prm=<name>` types them (a composed config
        # keeps its option's schema even when prm.name was overridden: check_prm refuses that)
        typed = schema_for(str(OmegaConf.select(cfg, "prm.name", default=PRMConfig.name)))
    kind = OmegaConf.structured(typed)
    typing: dict[str, Any] = {"prm": kind}
    if hasattr(schema, "approach"):
        # the approach likewise: those with settings of their own have a schema of their own
        approach = OmegaConf.select(cfg, "approach.name", default=None)
        if approach in APPROACH_SCHEMAS:
            typing["approach"] = OmegaConf.structured(APPROACH_SCHEMAS[approach])
    return OmegaConf.merge(OmegaConf.structured(schema), typing, cfg)


def prm_config(name: str, **settings: Any) -> PRMConfig:
    """The settings of `prm.name=name` in its kind's schema (`settings` are its fields): what
    `prm=<name>` composes, for code and tests that build a PRM without Hydra."""
    return schema_for(name)(name=name, **settings)


def shares_generator(cfg: PRMConfig, model: ModelConfig | None) -> bool:
    """The PRM reads the generator model itself, so it uses the generator's engine."""
    kind = KINDS.get(cfg.name)
    if kind is None:
        return False
    path = model_path(cfg)
    if kind.reads_generator or (kind.generator_without_path and path is None):
        return True
    return kind.generative and model is not None and path is not None and path == model.path


def needs_own_engine(cfg: PRMConfig, model: ModelConfig | None) -> bool:
    """The PRM starts an engine of its own in this process (and so needs memory beside it)."""
    kind = KINDS.get(cfg.name)
    model_free = kind is not None and kind.model_free
    return cfg.server_url is None and not model_free and not shares_generator(cfg, model)


def hub_needs(cfg: PRMConfig, model: ModelConfig | None) -> list[hf_cache.Need]:
    """The hub repositories this PRM loads in this process (none when it is served, model-free
    or reads the generator's own weights)."""
    path = model_path(cfg)
    if not needs_own_engine(cfg, model) or not hf_cache.is_hub_id(path):
        return []
    return [hf_cache.Need(str(path), "model", "prm.model_path")]


@dataclass(frozen=True)
class EnginePlan:
    """The engine settings a run starts with, fitted to the models and the card."""

    model: ModelConfig
    """The generator's settings (max_model_len clamped, gpu_memory_utilization sized)."""
    prm: PRMConfig
    """The PRM's (the same for PRMs without an engine of their own)."""
    split: Split | None
    """The card's shares, one per engine started (generator first, then the PRM's own);
    None on CPUs or when the card is unknown."""
    needs: tuple[EngineNeed, ...] = ()
    """What each engine needs, in the same order (for reports such as the doctor's)."""


ConfigReader = Callable[[str], dict[str, Any] | None]


def plan_engines(
    model: ModelConfig,
    cfg: PRMConfig,
    card_bytes: int | None,
    read: ConfigReader = hf_cache.model_config,
    with_generator: bool = True,
) -> EnginePlan:
    """Fit the run's engines before any loads: each `max_model_len` to its model's context
    (`hotncold.engine.context`), then, on a card of `card_bytes`, each engine's share of it to
    its weights (`hotncold.engine.memory`). ConfigError, naming the fixes, when the context or
    the card cannot hold them. `card_bytes` None: no GPU (CPU engines size their KV caches in
    GiB; shares are left alone); 0: a GPU of unknown memory (the fixed shares of old).
    `with_generator=False` plans the PRM alone (a PRM server)."""
    generator_config = read(model.path) if with_generator else None
    if with_generator:
        length = allowed_length(
            model.max_model_len,
            generator_config,
            "model.max_model_len",
            model.path,
            must_fit=("model.max_tokens", model.max_tokens),
        )
        model = dataclasses.replace(model, max_model_len=length)
    own = needs_own_engine(cfg, model if with_generator else None)
    prm_config = None
    if own:
        assert isinstance(cfg, ModelPRMConfig)  # every kind with an engine of its own is one
        kind = KINDS[cfg.name]
        found = read(str(cfg.model_path))
        prm_config = as_loaded_by_vllm(found) if found is not None and kind.converts else found
        length = allowed_length(
            cfg.max_model_len,
            prm_config,
            "prm.max_model_len",
            str(cfg.model_path),
            pooling=kind.runner == "pooling",
        )
        cfg = dataclasses.replace(cfg, max_model_len=length)
    if card_bytes is None:  # CPUs size KV caches in GiB; shares only matter on a GPU
        return EnginePlan(model, cfg, None)
    if card_bytes == 0:
        return _fixed_split(model, cfg, own, with_generator)
    needs: list[EngineNeed | None] = []
    fixed: list[float | None] = []
    if with_generator:
        needs.append(
            _need(
                "generator",
                model.path,
                generator_config,
                model.dtype,
                model.max_model_len,
                model.tensor_parallel_size,
                model.gpu_memory_utilization,
            )
        )
        fixed.append(None)
    if own:
        cap = None if with_generator else LONE_SHARE
        needs.append(
            _need(
                "PRM",
                str(cfg.model_path),
                prm_config,
                cfg.dtype,
                cfg.max_model_len,
                cfg.tensor_parallel_size,
                cap,
            )
        )
        fixed.append(cfg.gpu_memory_utilization)
    if not needs:
        return EnginePlan(model, cfg, None)
    if any(n is None for n in needs):
        log.warning(
            "cannot size the engines from config.json (not found, or an architecture hotncold "
            "does not count); using fixed shares of the card"
        )
        return _fixed_split(model, cfg, own, with_generator)
    known = [n for n in needs if n is not None]
    try:
        split = memory.split(card_bytes, known, fixed)
    except memory.DoesNotFit as error:
        raise ConfigError(_does_not_fit(error, cfg, card_bytes, own)) from None
    shares = list(split.shares)
    if with_generator:
        model = dataclasses.replace(model, gpu_memory_utilization=shares.pop(0))
    if own:
        cfg = dataclasses.replace(cfg, gpu_memory_utilization=shares.pop(0))
    for need, share, tokens in zip(known, split.shares, split.kv_tokens):
        log.info(
            "%s %s: %.3f of the %s card (weights %s, KV cache for %d tokens)",
            need.role,
            need.model,
            share,
            gib(card_bytes),
            gib(need.weight_bytes),
            tokens,
        )
    return EnginePlan(model, cfg, split, tuple(known))


def _need(
    role: str,
    path: str,
    config: dict[str, Any] | None,
    dtype: str,
    max_model_len: int,
    tensor_parallel: int,
    cap: float | None,
) -> EngineNeed | None:
    """What an engine needs on each of its cards, or None when config.json cannot say."""
    if config is None:
        return None
    params = model_facts.parameter_count(config)
    dtype = gpu_dtype(dtype, config)
    kv = model_facts.kv_bytes_per_token(config, dtype)
    if params is None or kv is None:
        return None
    parts = max(1, tensor_parallel)
    return EngineNeed(
        role=role,
        model=path,
        weight_bytes=model_facts.weight_bytes(params, dtype) // parts,
        kv_bytes_per_token=kv // parts,
        max_model_len=max_model_len,
        cap=cap,
    )


def gpu_dtype(dtype: str, config: dict[str, Any]) -> str:
    """The dtype vLLM runs a model in on a GPU: the one asked for, or with `auto` the
    checkpoint's 16-bit dtype (float32 checkpoints run in bfloat16, as vLLM downcasts them)."""
    if dtype != "auto":
        return dtype
    declared = model_facts.config_dtype(config)
    return declared if declared in ("float16", "bfloat16") else "bfloat16"


def _fixed_split(model: ModelConfig, cfg: PRMConfig, own: bool, with_generator: bool) -> EnginePlan:
    """Sizes unknown: the fixed shares of old (the PRM's, and the generator the rest)."""
    if own:
        assert isinstance(cfg, ModelPRMConfig)
        share = cfg.gpu_memory_utilization
        if share is None:
            share = FALLBACK_PRM_SHARE if with_generator else LONE_SHARE
        cfg = dataclasses.replace(cfg, gpu_memory_utilization=share)
        if with_generator:
            left = round(GPU_MEMORY_SHARED - share, 4)
            if model.gpu_memory_utilization > left:
                model = dataclasses.replace(model, gpu_memory_utilization=left)
    return EnginePlan(model, cfg, None)


def _does_not_fit(error: memory.DoesNotFit, cfg: PRMConfig, card: int, own: bool) -> str:
    parts = ", ".join(
        f"{n.role} {n.model} {gib(n.minimum)} ({gib(n.weight_bytes)} weights)" for n in error.needs
    )
    fixes = "use a card with more memory"
    if own:
        fixes += (
            f", serve the PRM on another GPU (`python -m hotncold.prm_server prm={cfg.name}` "
            "there, then prm.server_url=http://<its node>:8088), or use a smaller PRM "
            "(e.g. prm=skywork_1.5b)"
        )
        if isinstance(cfg, ModelPRMConfig) and cfg.gpu_memory_utilization is not None:
            fixes += ", or drop prm.gpu_memory_utilization (null sizes it from the weights)"
    else:
        fixes += " or split the model over more GPUs (tensor_parallel_size)"
    return f"the engines do not fit the {gib(card)} GPU: {error.why} (needs: {parts}); {fixes}"


def sized_for_batch(model: ModelConfig, cfg: PRMConfig, batch: kv_cache.Batch) -> ModelConfig:
    """The generator's settings with its CPU KV cache, when unset, sized for `batch` within the
    memory left after the PRM engine's (`hotncold.engine.kv_cache`); unchanged on GPUs, where
    `plan_engines` sized the shares of the card."""
    if vllm_engine.on_cpu():
        sized, plan = vllm_engine.sized_for(model, batch, cpu_bytes_beside(cfg, model))
        if plan is not None and plan.capped:
            log.warning(
                "the batch needs a %.1f GiB KV cache but this machine can spare %.1f GiB: vLLM "
                "will preempt and recompute (slower, same results); lower batch_size or n",
                plan.need_bytes / kv_cache.GIB,
                plan.gib,
            )
        elif plan is not None:
            log.info(
                "KV cache %g GiB for %d problems x %d samples (they need %.2f GiB)",
                plan.gib,
                batch.problems,
                batch.n,
                plan.need_bytes / kv_cache.GIB,
            )
        return sized
    return model


UNKNOWN_PRM_WEIGHTS = 2 * kv_cache.GIB
"""Assumed weight bytes of a PRM whose config.json is not on this machine yet."""


def cpu_bytes_beside(cfg: PRMConfig, model: ModelConfig) -> int:
    """CPU memory the PRM's own engine will take beside the generator (0 when it has none):
    its KV cache, its weights and an engine's runtime."""
    if not needs_own_engine(cfg, model):
        return 0
    assert isinstance(cfg, ModelPRMConfig)  # a PRM with an engine of its own
    config = model_facts.read_config(cfg.model_path) if cfg.model_path else None
    params = model_facts.parameter_count(config) if config else None
    dtype = "float32" if cfg.dtype == "auto" else cfg.dtype
    weights = model_facts.weight_bytes(params, dtype) if params else UNKNOWN_PRM_WEIGHTS
    return int(cfg.cpu_kv_cache_gib * kv_cache.GIB) + weights + kv_cache.ENGINE_RUNTIME_BYTES


def build_prm(
    cfg: PRMConfig,
    engine: Engine | None = None,
    model: ModelConfig | None = None,
    prompt: PromptConfig | None = None,
) -> PRM:
    """The PRM `cfg` names: served by `cfg.server_url` when set, else loaded here.

    `engine`, `model` and `prompt` are the generator's: PRMs that read the generator use them
    (self_certainty rebuilds its prompts), and a PRM whose weights are the generator's shares
    its engine instead of loading them twice. The class gets `engine` only then (None: it loads
    its own weights, if it has any).
    """
    if cfg.server_url:
        return http_client.RemotePRM(cfg)
    kind = KINDS[cfg.name]
    on_generator = shares_generator(cfg, model)
    if on_generator and kind.generative and engine is None:
        raise ValueError(f"prm={cfg.name} reads the generator: pass its engine")
    module, cls = kind.target.split(":")
    return getattr(importlib.import_module(module), cls)(
        cfg, engine=engine if on_generator else None, model=model, prompt=prompt
    )


def check_prm_weights(cfg: PRMConfig, model: ModelConfig | None) -> None:
    """ConfigError when the PRM loads weights of its own (not the generator's, not through a
    server) and `prm.model_path` names none this machine can load (see engine/weights.py)."""
    if not needs_own_engine(cfg, model):
        return
    assert isinstance(cfg, ModelPRMConfig)
    if not cfg.model_path:
        raise ConfigError(f"prm={cfg.name} needs prm.model_path (a folder or hub id)")
    download_dir = cfg.engine_kwargs.get("download_dir")
    check_model_path(cfg.model_path, "prm.model_path", download_dir)


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
    kind = KINDS[p.name]
    if type(p) is not kind.schema:  # e.g. prm=rlhflow_8b prm.name=judge
        raise ConfigError(
            f"prm.name={p.name!r} has {type(p).__name__}'s settings, not {kind.schema.__name__}'s; "
            f"choose the option with prm={p.name} instead of overriding prm.name"
        )
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
    for rule in kind.rules:
        rule(p)
    if isinstance(p, GenerativePRMConfig) and p.positive_token == p.negative_token:
        raise ConfigError("prm.positive_token and prm.negative_token must differ")
    if isinstance(p, MathShepherdConfig | HeadPRMConfig):
        if p.step_separator == "":
            raise ConfigError("prm.step_separator is empty; use null for the model's own separator")
        check_literal_escapes("prm.step_separator", p.step_separator)
    if isinstance(p, ModelPRMConfig):
        _check_engine(p, model)


def _check_engine(p: ModelPRMConfig, model: ModelConfig | None) -> None:
    """The rules of a PRM's own engine settings."""
    if p.dtype not in DTYPES:
        raise ConfigError(f"prm.dtype={p.dtype!r}: use auto, float32, float16 or bfloat16")
    if p.max_model_len < 16:
        raise ConfigError(f"prm.max_model_len={p.max_model_len} is too small; use e.g. 8192")
    if p.cpu_kv_cache_gib <= 0:
        raise ConfigError("prm.cpu_kv_cache_gib must be positive (e.g. 0.5)")
    if p.block_size is not None and (p.block_size < 1 or p.block_size % 16):
        raise ConfigError(f"prm.block_size={p.block_size}: use a multiple of 16 (32 on CPUs)")
    if p.gpu_memory_utilization is None:
        return  # sized from the weights when the engines are planned
    if not 0 < p.gpu_memory_utilization <= 1:
        raise ConfigError(
            f"prm.gpu_memory_utilization={p.gpu_memory_utilization} must be in (0, 1]; or null "
            "to size it from the weights"
        )
    if model is not None and needs_own_engine(p, model):
        left = GPU_MEMORY_SHARED - p.gpu_memory_utilization
        if left < 0.1:
            raise ConfigError(
                f"prm.gpu_memory_utilization={p.gpu_memory_utilization:g} leaves the generator "
                f"{max(left, 0):.2f} of the accelerator they share; lower it (e.g. 0.4) or serve "
                "the PRM elsewhere (prm.server_url)"
            )
