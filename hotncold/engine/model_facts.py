"""What a model's own config.json says, read before anything loads: its size and its parameters.

Compute accounting (FLOPs ~ 2 x parameters x tokens) and GPU memory sizing (weight bytes, KV
bytes per token) both need a model's shapes, and neither may wait for vLLM to load the weights:
a wrong plan should fail in seconds on a login node. The same goes for the longest context an
engine may ask for (`max_positions`, derived as vLLM derives it). So the count is computed from
the architecture's shapes in config.json (transformers' own `num_parameters` needs the model
instantiated). The formula
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
    return _read_json(path, "config.json")


def _read_json(path: str | Path, name: str) -> dict[str, Any] | None:
    folder = Path(path).expanduser()
    if (folder / name).is_file():
        return json.loads((folder / name).read_text())
    if folder.exists() or str(path).startswith((".", "/", "~")):
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(str(path), name)
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


@dataclass(frozen=True)
class TokenCost:
    """The parameters one token's forward pass multiplies, for FLOPs ~ 2 x parameters x tokens.

    The input embedding is a table lookup (no multiply-adds), so it never counts. The
    vocabulary projection (the LM head, tied to the embedding or not) is a real matmul, but
    engines compute it only where logits are needed (a sampled token, a label probability),
    so it is kept apart from the rest.
    """

    body: int
    """Multiplied at every token processed: every parameter but the input embedding and the
    vocabulary projection (a classification head's small matrix is in it)."""
    vocab: int
    """The vocabulary projection (vocab x hidden), multiplied only where logits are computed;
    0 for models without a language-model head (pooling PRMs)."""


def token_cost(params: Parameters) -> TokenCost:
    """Split a model's parameters into what every token multiplies and the vocabulary head."""
    if params.lm_head:  # untied: its own matrix
        vocab = params.lm_head
    elif params.tied:  # the embedding matrix doubles as the LM head
        vocab = params.embedding
    else:  # a classification head: no vocabulary projection at all
        vocab = 0
    return TokenCost(body=params.total - params.embedding - params.lm_head, vocab=vocab)


def weight_bytes(params: Parameters, dtype: str) -> int:
    """Bytes the weights take on the device in `dtype` (float32, float16, bfloat16)."""
    return params.total * DTYPE_BYTES[dtype]


def config_dtype(config: dict[str, Any]) -> str | None:
    """The dtype the checkpoint declares (`torch_dtype`, or `dtype` in newer configs)."""
    value = config.get("torch_dtype") or config.get("dtype")
    return str(value) if value else None


POSITION_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_target_positions",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
"""The config.json keys vLLM reads a model's context length from (the smallest one wins)."""

UNSCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")
"""RoPE types whose `max_position_embeddings` is already the scaled length: vLLM does not
multiply it by the scaling `factor`. (vLLM 0.21-0.29 did multiply YaRN's original length by its
factor; counting YaRN as unscaled gives the smaller, newer limit, which every supported release
accepts.)"""

DEFAULT_POSITIONS = 2048
"""What vLLM assumes (with a warning) when config.json names no length at all."""


@dataclass(frozen=True)
class Positions:
    """The longest context vLLM lets an engine on this model ask for, and where it comes from."""

    limit: int
    """Tokens per sequence (prompt plus generation) vLLM accepts as `max_model_len`."""
    source: str
    """The config.json key it was read from, with the RoPE factor when one applies."""


def max_positions(
    config: dict[str, Any], tokenizer_config: dict[str, Any] | None = None, pooling: bool = False
) -> Positions:
    """The `max_model_len` vLLM derives from a model's config.json, following its
    `_get_and_verify_max_len` (vllm config/model.py, 0.21-0.33): the smallest of the length
    keys of the text config (`model_max_length` of the config, when set, replaces it), capped
    by the tokenizer's `model_max_length` only for pooling models with absolute position
    embeddings, then multiplied by the RoPE scaling factor unless the RoPE type is already
    scaled. Asking vLLM for more fails at start-up ("User-specified max_model_len ... is greater
    than the derived max_model_len") unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1."""
    text = config.get("text_config") or config
    limit: float = float("inf")
    key = ""
    for name in POSITION_KEYS:
        value = text.get(name)
        if isinstance(value, int | float) and value < limit:
            limit, key = value, name
    if isinstance(text.get("model_max_length"), int | float) and text["model_max_length"]:
        limit, key = text["model_max_length"], "model_max_length"
    absolute = text.get("position_embedding_type") == "absolute"
    if tokenizer_config and pooling and absolute:
        cap = tokenizer_config.get("model_max_length")
        if isinstance(cap, int | float) and cap < limit:
            limit, key = cap, "model_max_length of tokenizer_config.json"
    if limit == float("inf"):
        limit, key = DEFAULT_POSITIONS, "no length in config.json: vLLM's default"
    factor = 1.0
    for rope in _rope_parameters(text):
        kind = rope.get("rope_type") or rope.get("type") or "default"
        if kind not in UNSCALED_ROPE and rope.get("factor") is not None:
            factor = float(rope["factor"])
    if factor != 1.0:
        key = f"{key} x RoPE factor {factor:g}"
    return Positions(limit=int(limit * factor), source=key)


def _rope_parameters(text: dict[str, Any]) -> list[dict[str, Any]]:
    """The RoPE settings, from `rope_scaling` (older configs) or `rope_parameters` (newer ones,
    possibly one dict per layer type)."""
    found = text.get("rope_parameters") or text.get("rope_scaling")
    if not isinstance(found, dict):
        return []
    nested = [v for v in found.values() if isinstance(v, dict)]
    return nested or [found]


def kv_bytes_per_token(config: dict[str, Any], dtype: str) -> int | None:
    """Bytes of KV cache one token takes in `dtype`: keys and values of every layer's KV heads
    (grouped-query attention counted), as vLLM's full-attention cache stores them; None when
    config.json lacks the shapes."""
    text = config.get("text_config") or config
    try:
        heads = int(text["num_attention_heads"])
        kv = int(text.get("num_key_value_heads") or heads)
        head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
        layers = int(text["num_hidden_layers"])
    except (KeyError, TypeError, ValueError):
        return None
    return 2 * layers * kv * head_dim * DTYPE_BYTES[dtype]


def read_tokenizer_config(path: str | Path) -> dict[str, Any] | None:
    """tokenizer_config.json of a local folder or of a hub id in the cache (never downloads)."""
    return _read_json(path, "tokenizer_config.json")
