"""Never ask an engine for more context than its model allows.

vLLM refuses at start-up a `max_model_len` above what it derives from the model's config.json
("User-specified max_model_len (8192) is greater than the derived max_model_len
(max_position_embeddings=4096 ...)"), after the run has already started, possibly after a
generator has loaded beside it. The limit is known from config.json alone
(`model_facts.max_positions`), so it is applied before anything loads:

- a PRM's `max_model_len` is only the longest input it accepts: asking for more than the model
  has can be clamped to the model's limit with a logged note (inputs longer than that could
  never be scored anyway);
- a generator is clamped the same way as long as `model.max_tokens` still fits with room for a
  prompt; when it cannot fit, the run is refused with one line naming the fix, since silently
  generating fewer tokens than asked would change what the run computes.

`VLLM_ALLOW_LONG_MAX_MODEL_LEN=1` is vLLM's own opt-out (RoPE models then produce NaN past the
limit): with it set, the request is passed through, with a warning.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hotncold.config import ConfigError
from hotncold.engine.model_facts import Positions, max_positions

log = logging.getLogger(__name__)

ALLOW_LONG = "VLLM_ALLOW_LONG_MAX_MODEL_LEN"


def allowed_length(
    requested: int,
    config: dict[str, Any] | None,
    what: str,
    model: str,
    pooling: bool = False,
    tokenizer_config: dict[str, Any] | None = None,
    must_fit: tuple[str, int] | None = None,
) -> int:
    """The `max_model_len` to start the engine with: `requested`, or the model's limit when
    `requested` is above it (logged). `what` names the setting (`prm.max_model_len`);
    `must_fit` = (setting, tokens) that must stay below the limit or the run is refused
    (a generator's `model.max_tokens`). Unknown config: `requested` unchanged."""
    if config is None:
        return requested
    limit: Positions = max_positions(config, tokenizer_config, pooling=pooling)
    if must_fit is not None and must_fit[1] >= limit.limit:
        raise ConfigError(
            f"{must_fit[0]}={must_fit[1]} cannot fit {model}, whose context is {limit.limit} "
            f"tokens ({limit.source} in its config.json); lower {must_fit[0]} below "
            f"{limit.limit} (and {what} to at most {limit.limit})"
        )
    if requested <= limit.limit:
        return requested
    if os.environ.get(ALLOW_LONG, "").lower() in ("1", "true"):
        log.warning(
            "%s=%d exceeds %s's %d positions (%s); passed through because %s is set",
            what,
            requested,
            model,
            limit.limit,
            limit.source,
            ALLOW_LONG,
        )
        return requested
    log.warning(
        "%s=%d is more than %s allows (%d tokens, %s in its config.json): using %d",
        what,
        requested,
        model,
        limit.limit,
        limit.source,
        limit.limit,
    )
    return limit.limit
