"""How model-based PRMs are loaded: their engine settings, their tokenizer, input lengths.

A PRM engine is an ordinary cached engine (`hotncold.engine.vllm_engine.get_engine`) built from
the PRM's own settings, so two PRMs with the same weights and settings share one, and a PRM that
reads the generator model uses the generator's engine itself. (This module holds no engine.)
"""

from __future__ import annotations

from typing import Any

from hotncold.config import ModelConfig, ModelPRMConfig
from hotncold.engine.vllm_engine import resolve_model_path


def prm_model_config(
    cfg: ModelPRMConfig, path: str, runner: str = "generate", pooler: dict[str, Any] | None = None
) -> ModelConfig:
    """The engine settings of a PRM whose weights are at `path`."""
    kwargs: dict[str, Any] = dict(cfg.engine_kwargs)
    # vLLM keeps the metrics of one engine per process, the last one started: the generator's
    # drive the run's progress bar, so a PRM engine keeps none (VLLMEngine)
    kwargs.setdefault("disable_log_stats", True)
    if runner != "generate":
        kwargs["runner"] = runner
    if pooler is not None:
        kwargs["pooler_config"] = pooler
    if cfg.block_size is not None:
        kwargs["block_size"] = cfg.block_size
    return ModelConfig(
        name=cfg.name,
        path=path,
        family="other",
        dtype=cfg.dtype,
        max_model_len=cfg.max_model_len,
        max_tokens=1,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        cpu_kv_cache_gib=cfg.cpu_kv_cache_gib,
        tensor_parallel_size=cfg.tensor_parallel_size,
        trust_remote_code=cfg.trust_remote_code,
        engine_kwargs=kwargs,
    )


def as_loaded_by_vllm(config: dict[str, Any]) -> dict[str, Any]:
    """The config.json of a Skywork-style value-head PRM once converted for vLLM: a
    `Qwen2ForTokenClassification` with one label whose `score` is the value head (the LM head
    is dropped). `hotncold.prm.heads` writes it; memory sizing reads it before converting."""
    if config.get("architectures") == ["Qwen2ForTokenClassification"]:
        return config
    out = dict(config)
    out.update(
        architectures=["Qwen2ForTokenClassification"],
        num_labels=1,
        id2label={"0": "LABEL_0"},
        label2id={"LABEL_0": 0},
    )
    return out


def load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """The Hugging Face tokenizer of an engine's weights (formats need offsets and templates)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        resolve_model_path(path), trust_remote_code=trust_remote_code
    )


def check_length(ids: list[int], limit: int, name: str) -> None:
    if len(ids) >= limit:
        raise ValueError(
            f"a {name} PRM input of {len(ids)} tokens does not fit prm.max_model_len={limit}; "
            "raise prm.max_model_len"
        )
