"""What a model's own config.json says, read before anything loads: its size and its parameters.

Compute accounting (FLOPs ~ 2 x parameters x tokens) and GPU memory sizing (weight bytes) both
need a model's parameter count, and neither may wait for vLLM to load the weights: a wrong plan
should fail in seconds on a login node. So the count is computed from the architecture's shapes
in config.json (transformers' own `num_parameters` needs the model instantiated). The formula
covers the decoder families hotncold ships configs for (Llama, Mistral, Qwen2 and their PRM
heads); anything else gives None, and callers say that they cannot account for it rather than
guess.

Where config.json comes from: a local folder, the embedded model's converted folder, or the
Hugging Face cache for a hub id (never the network: offline compute nodes read what the login
node prefetched).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

DECODERS = ("LlamaFor", "MistralFor", "Qwen2For")
"""Architecture prefixes whose parameters `parameter_count` computes (the shipped families)."""


@dataclass(frozen=True)
class Parameters:
    """A model's parameter count, split the way compute and memory accounting need it."""

    total: int
    """Every parameter stored (what the weights occupy)."""
    embedding: int
    """The input embedding (vocab x hidden): a table lookup, no multiply-adds per token."""
    lm_head: int
    """The output projection to the vocabulary when it is a separate matrix (0 when tied to the
    embedding or when the model has no language-model head, as pooling PRMs)."""
    tied: bool
    """The output projection reuses the embedding matrix (still a matmul per logit computed)."""


def read_config(path: str | Path) -> dict[str, Any] | None:
    """config.json of a local model folder, or of a hub id from the Hugging Face cache; None
    when neither has it (never downloads)."""
    folder = Path(path).expanduser()
    if (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text())
    if folder.exists() or str(path).startswith((".", "/", "~")):
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(str(path), "config.json")
    except ValueError:  # not a valid hub id
        return None
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text())
    return None


def parameter_count(config: dict[str, Any]) -> Parameters | None:
    """Parameters of a Llama/Mistral/Qwen2 decoder (with its head) from its config, else None.

    Per layer: q, k, v, o projections (grouped-query: k and v have num_key_value_heads heads;
    Qwen2 adds q/k/v biases), a gated MLP (gate, up, down), two RMSNorm weights; then the input
    embedding, the final norm, and the head the architecture names: an untied LM head
    (`*ForCausalLM`), a classification layer (`*ForTokenClassification`: hidden x labels +
    bias), or Qwen2-Math-PRM's two-layer score head (`Qwen2ForProcessRewardModel`).
    Checked against the tensors of real checkpoints in tests/test_model_facts.py.
    """
    arch = (config.get("architectures") or [""])[0]
    if not arch.startswith(DECODERS):
        return None
    try:
        h = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        inter = int(config["intermediate_size"])
        heads = int(config["num_attention_heads"])
        kv = int(config.get("num_key_value_heads") or heads)
        vocab = int(config["vocab_size"])
    except (KeyError, TypeError, ValueError):
        return None
    head_dim = int(config.get("head_dim") or h // heads)
    qkv_bias = arch.startswith("Qwen2For")
    attention = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h
    if qkv_bias or config.get("attention_bias"):
        attention += heads * head_dim + 2 * kv * head_dim
    if config.get("attention_bias") and not qkv_bias:
        attention += h  # Llama's attention_bias also biases the output projection
    mlp = 3 * h * inter + (2 * inter + h if config.get("mlp_bias") else 0)
    per_layer = attention + mlp + 2 * h
    embedding = vocab * h
    body = embedding + layers * per_layer + h
    tied = bool(config.get("tie_word_embeddings", False))
    lm_head = head = 0
    if arch.endswith("ForCausalLM"):
        lm_head = 0 if tied else vocab * h
    elif arch.endswith("ForTokenClassification") or arch.endswith("ForSequenceClassification"):
        labels = int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
        head = h * labels + (labels if arch.endswith("ForTokenClassification") else 0)
        tied = False
    elif arch == "Qwen2ForProcessRewardModel":
        labels = int(config.get("num_labels") or 2)
        head = h * h + h + h * labels + labels
        tied = False
    else:
        return None
    return Parameters(total=body + lm_head + head, embedding=embedding, lm_head=lm_head, tied=tied)


def kv_bytes_per_token(config: dict[str, Any], dtype: str) -> int | None:
    """KV-cache bytes one token takes in a Llama/Mistral/Qwen2 decoder, else None: a key and a
    value vector of `head_dim` per KV head (grouped-query: num_key_value_heads) in every layer.
    SmolLM2-135M in float32: 2 x 30 layers x 3 heads x 64 x 4 bytes = 46,080."""
    arch = (config.get("architectures") or [""])[0]
    if not arch.startswith(DECODERS) or dtype not in DTYPE_BYTES:
        return None
    try:
        heads = int(config["num_attention_heads"])
        kv = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
        layers = int(config["num_hidden_layers"])
    except (KeyError, TypeError, ValueError):
        return None
    return 2 * layers * kv * head_dim * DTYPE_BYTES[dtype]


def weight_bytes(params: Parameters, dtype: str) -> int:
    """Bytes the weights take on the device in `dtype` (float32, float16, bfloat16)."""
    return params.total * DTYPE_BYTES[dtype]


def config_dtype(config: dict[str, Any]) -> str | None:
    """The dtype the checkpoint declares (`torch_dtype`, or `dtype` in newer configs)."""
    value = config.get("torch_dtype") or config.get("dtype")
    return str(value) if value else None
