"""The GPU memory rule: how much of one card each engine of a run takes, sized from the weights.

vLLM's `gpu_memory_utilization` is the fraction of the card's *total* memory one engine may use,
its weights included; what is left after the weights and the working memory becomes its KV
cache (vllm config/cache.py, v1/worker/gpu_worker.py). Two engines in one process (a generator
and a PRM) each take their own fraction, and the second one starts only if the first left it
free. Fixed fractions (0.55 + 0.40) break as soon as a model is large for the card: an 8B bf16
PRM's 16 GB of weights fill 0.40 of a 40 GB card and vLLM dies after the generator has loaded.

So each engine's share is sized from what it needs, known before anything loads: its weights
(parameters from config.json x bytes per parameter), a working-memory allowance, and a KV cache
for at least one full-length sequence (vLLM refuses a smaller cache). What is left of the
budget is split so both caches hold the same number of tokens: the PRM reads every candidate
the generator writes, so neither cache is useful without the other. A plan that cannot give
every engine its minimum is refused before anything loads.

Written here, not taken from vLLM: vLLM only learns its working memory by profiling after the
weights are loaded, which is exactly the failure this rule exists to prevent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

GiB = 2**30

GPU_MEMORY_SHARED = 0.95
"""Most of a card that all engines of one process take together: the rest is left for the
CUDA contexts and the allocator (vLLM checks free memory against the share at each start)."""

WORKSPACE_BYTES = 2 * GiB
"""Working memory per engine besides weights and KV cache: CUDA context and libraries, CUDA
graphs, sampler buffers. An allowance (not measured here: no GPU), on the safe side of what
vLLM's profiling reports for the shipped sizes."""

ACTIVATION_SHARE = 0.1
"""Activation memory at vLLM's profiling batch, as a fraction of the weights (it grows with the
model's width as the weights do; for an 8B model at 16k batched tokens it is about 1.5 GB)."""


@dataclass(frozen=True)
class EngineNeed:
    """What one engine needs on the card, from its model's config.json."""

    role: str
    """`generator` or `PRM` (for messages)."""
    model: str
    """Its weights (hub id or folder), for messages."""
    weight_bytes: int
    """Bytes of its weights on one card (parameters x dtype size / tensor_parallel_size)."""
    kv_bytes_per_token: int
    """Bytes of KV cache per token on one card."""
    max_model_len: int
    """Its longest sequence: its KV cache must hold at least one."""
    cap: float | None = None
    """The most of the card it may take (the user's gpu_memory_utilization), None: no cap."""

    @property
    def workspace(self) -> int:
        return WORKSPACE_BYTES + int(ACTIVATION_SHARE * self.weight_bytes)

    @property
    def minimum(self) -> int:
        """The least it can start with: weights, working memory, one full sequence of KV."""
        return self.weight_bytes + self.workspace + self.kv_bytes_per_token * self.max_model_len


@dataclass(frozen=True)
class Split:
    """The shares of one card (`gpu_memory_utilization` per engine) and what they leave."""

    total_bytes: int
    shares: tuple[float, ...]
    """One per engine, in the order asked."""
    kv_tokens: tuple[int, ...]
    """Tokens each engine's KV cache holds with its share."""


class DoesNotFit(Exception):
    """The engines' minimums exceed the card; `needs` and `available` say by how much."""

    def __init__(self, needs: Sequence[EngineNeed], available: int, why: str) -> None:
        super().__init__(why)
        self.needs = tuple(needs)
        self.available = available
        self.why = why


def split(
    total_bytes: int,
    needs: Sequence[EngineNeed],
    fixed: Sequence[float | None] | None = None,
    budget: float = GPU_MEMORY_SHARED,
) -> Split:
    """Shares of a card of `total_bytes` for engines with these needs; `fixed` holds a share the
    user set for an engine (None: sized here). Raises DoesNotFit when some engine cannot get its
    minimum. One engine alone may use up to its cap (or the whole budget)."""
    fixed = list(fixed) if fixed is not None else [None] * len(needs)
    if len(needs) == 1 and fixed[0] is None:
        fixed = [min(needs[0].cap or budget, budget)]  # alone: the user's share, as vLLM reads it
    shares: list[float | None] = list(fixed)
    for need, share in zip(needs, shares):
        if share is not None and share * total_bytes < need.minimum:
            raise DoesNotFit(
                needs,
                int(share * total_bytes),
                f"the {need.role}'s share {share:g} of the card is {gib(share * total_bytes)}, "
                f"less than the {gib(need.minimum)} it needs",
            )
    sized = [i for i, s in enumerate(shares) if s is None]
    left = budget * total_bytes - sum(s * total_bytes for s in shares if s is not None)
    left -= sum(needs[i].minimum for i in sized)
    if left < 0:
        raise DoesNotFit(
            needs,
            int(budget * total_bytes),
            f"{' + '.join(n.role for n in needs)} need {gib(sum(n.minimum for n in needs))}, "
            f"more than the {gib(budget * total_bytes)} usable of a {gib(total_bytes)} card",
        )
    # The rest, in equal KV tokens; an engine held at its cap passes its excess on.
    while sized:
        per_token = sum(needs[i].kv_bytes_per_token for i in sized) or 1
        tokens = left / per_token
        capped = [
            i
            for i in sized
            if needs[i].cap is not None
            and needs[i].minimum + tokens * needs[i].kv_bytes_per_token > needs[i].cap * total_bytes
        ]
        if not capped:
            for i in sized:
                grant = needs[i].minimum + tokens * needs[i].kv_bytes_per_token
                shares[i] = grant / total_bytes
            break
        for i in capped:
            cap = float(needs[i].cap or 0)
            if cap * total_bytes < needs[i].minimum:
                raise DoesNotFit(
                    needs,
                    int(cap * total_bytes),
                    f"the {needs[i].role}'s gpu_memory_utilization {cap:g} of the card is "
                    f"{gib(cap * total_bytes)}, less than the {gib(needs[i].minimum)} it needs",
                )
            shares[i] = cap
            left -= cap * total_bytes - needs[i].minimum
            sized.remove(i)
    final = tuple(math.floor(float(s) * 1000) / 1000 for s in shares)  # vLLM rounds nothing up
    kv = tuple(
        max(0, int(s * total_bytes - n.weight_bytes - n.workspace) // max(n.kv_bytes_per_token, 1))
        for s, n in zip(final, needs)
    )
    return Split(total_bytes=total_bytes, shares=final, kv_tokens=kv)


def gib(value: float) -> str:
    """Bytes in GiB, the unit nvidia-smi and a card's name use (an "A100 40GB" has 40 GiB)."""
    return f"{value / GiB:.1f} GiB"
