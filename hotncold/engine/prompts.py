"""The generator's prompt for a problem: the configured chat, rendered by the engine's template."""

from __future__ import annotations

from hotncold.config import ModelConfig
from hotncold.engine.requests import Engine


def build_prompt(engine: Engine, model: ModelConfig, problem: str) -> str:
    messages = []
    if model.system_prompt:
        messages.append({"role": "system", "content": model.system_prompt})
    messages.append({"role": "user", "content": model.user_template.replace("{problem}", problem)})
    return engine.format_chat(messages, model.chat_template)
