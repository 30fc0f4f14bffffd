"""The generator's prompt for a problem: the `prompt` option's chat, rendered for the model.

The chat is [system (when `prompt.system_prompt` is set), user (`prompt.user_template` with the
problem)]. Which chat template renders it is an explicit table, `prompt.chat_templates`, keyed
by the model's declared `model.family` (never guessed from the tokenizer): a listed template
replaces the tokenizer's own, an unlisted family (or null) keeps the tokenizer's. The template
receives `date_string`, so templates that print a date print a fixed one.
"""

from __future__ import annotations

from typing import Any

from hotncold.config import ModelConfig, PromptConfig
from hotncold.engine.requests import Engine


def chat_template_for(prompt: PromptConfig, model: ModelConfig) -> str | None:
    """The chat template replacing the tokenizer's own for this model, or None (keep it)."""
    return prompt.chat_templates.get(model.family)


def chat_messages(prompt: PromptConfig, problem: str) -> list[dict[str, str]]:
    """The chat of one problem: the system message (when set), then the user message."""
    messages = []
    if prompt.system_prompt:
        messages.append({"role": "system", "content": prompt.system_prompt})
    messages.append({"role": "user", "content": prompt.user_template.replace("{problem}", problem)})
    return messages


def build_prompt(engine: Engine, prompt: PromptConfig, model: ModelConfig, problem: str) -> str:
    """The prompt text of one problem, ending where the assistant's answer begins."""
    return engine.format_chat(
        chat_messages(prompt, problem),
        chat_template_for(prompt, model),
        date_string=prompt.date_string,
        add_special_tokens=prompt.add_special_tokens,
    )


def special_prefix(tokenizer: Any) -> str:
    """The text of the special tokens `tokenizer` puts before any text it encodes (Llama 3:
    "<|begin_of_text|>"; Qwen2 and SmolLM2: nothing), which vLLM adds to a text prompt.

    hotncold's engine encodes prompts without special tokens (its templates write the BOS token
    themselves), so a template that relies on vLLM for it gets this prefix instead
    (`prompt.add_special_tokens`). Read off the tokenizer's own encoding of a sample text.
    """
    plain = list(tokenizer("1", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("1", add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return tokenizer.decode(full[:start]) if start else ""
    return ""
