"""The rules of the `model` and `prompt` settings that their types cannot express (run by
`hotncold.experiment.validate` before anything loads; a PRM server runs them too)."""

from __future__ import annotations

from hotncold.config import ConfigError, ModelConfig, PromptConfig
from hotncold.config.errors import check_literal_escapes

DTYPES = ("auto", "float32", "float16", "bfloat16")
"""What an engine's `dtype` may be (`auto`: float32 on the CPU, the model's dtype on GPUs)."""

FAMILIES = {
    "llama3": "Llama 3.x (<|start_header_id|> turns): Llama-3.2-1B/3B-Instruct",
    "qwen2": "Qwen2/Qwen2.5 ChatML (<|im_start|> turns): Qwen2.5-*-Instruct, AceMath",
    "smollm2": "SmolLM2 ChatML: the embedded CPU model",
    "other": "anything else: always the tokenizer's own template",
}
"""The chat formats `model.family` may name, i.e. the keys of `prompt.chat_templates`."""


def check_model(m: ModelConfig) -> None:
    """Raise ConfigError naming the fix for a generator setting no engine could run."""
    if m.max_tokens < 1:
        raise ConfigError(f"model.max_tokens={m.max_tokens}: set it to 1 or more")
    if m.max_tokens >= m.max_model_len:
        raise ConfigError(
            f"model.max_tokens={m.max_tokens} leaves no room for the prompt in "
            f"model.max_model_len={m.max_model_len}; lower max_tokens or raise max_model_len"
        )
    if m.family not in FAMILIES:
        raise ConfigError(
            f"model.family={m.family!r} is unknown; use one of {', '.join(FAMILIES)} "
            "(other: the tokenizer's own chat template)"
        )
    if not m.step_delimiter:
        raise ConfigError("model.step_delimiter is empty; use e.g. '\\n\\n'")
    check_literal_escapes("model.step_delimiter", m.step_delimiter)
    if not 0 < m.top_p <= 1:
        raise ConfigError(f"model.top_p={m.top_p} must be in (0, 1]")
    if m.cpu_kv_cache_gib is not None and m.cpu_kv_cache_gib <= 0:
        raise ConfigError(
            f"model.cpu_kv_cache_gib={m.cpu_kv_cache_gib} must be positive, or null to size it "
            "from the batch"
        )
    if m.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={m.dtype!r}: use auto, float32, float16 or bfloat16")


def check_prompt(p: PromptConfig) -> None:
    """Raise ConfigError naming the fix for a prompt that cannot be built for every problem."""
    if "{problem}" not in p.user_template:
        raise ConfigError("prompt.user_template must contain {problem}")
    unknown = sorted(k for k in p.chat_templates if k not in FAMILIES or k == "other")
    if unknown:
        raise ConfigError(
            f"prompt.chat_templates has {', '.join(unknown)}: its keys are model families "
            f"({', '.join(f for f in FAMILIES if f != 'other')})"
        )
    if not p.date_string.strip():
        raise ConfigError("prompt.date_string is empty; use e.g. '26 Jul 2024'")
