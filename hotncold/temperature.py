"""Temperature schedules: how a budget is spread over temperatures, and in which order.

Every approach asks one question, `TemperaturePlan.for_slots(k)`: the temperature of each of k
sampling slots (the n completions of Best-of-N, the m expansions of a beam). Allocation is exact
(largest remainder) and interleaved, so the first completions, the ones small-N metrics read,
already mix the temperatures in their target shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hotncold.config import TemperatureConfig


def allocate(total: int, ratios: Sequence[float]) -> list[int]:
    """Split `total` into integer counts proportional to `ratios` (largest remainder method).

    Ties in the remainder go to the earlier entry, so the result is deterministic.
    """
    if total < 0:
        raise ValueError("total must be >= 0")
    weight = float(sum(ratios))
    if weight <= 0:
        raise ValueError("ratios must have a positive sum")
    quotas = [total * r / weight for r in ratios]
    counts = [math.floor(q + 1e-9) for q in quotas]
    remainders = [q - c for q, c in zip(quotas, counts)]
    order = sorted(range(len(ratios)), key=lambda i: (-round(remainders[i], 9), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def interleave(counts: Sequence[int]) -> list[int]:
    """Order `sum(counts)` slots so that every prefix is as close to the final shares as possible.

    At each position the index furthest behind its target share goes next (ties to the earlier
    index): every prefix of length p holds each index within one of `p * share`.
    """
    total = sum(counts)
    placed = [0] * len(counts)
    order: list[int] = []
    for position in range(1, total + 1):
        deficits = [position * c / total - placed[i] for i, c in enumerate(counts)]
        best = max(
            (i for i, c in enumerate(counts) if placed[i] < c),
            key=lambda i: (deficits[i], -i),
        )
        placed[best] += 1
        order.append(best)
    return order


@dataclass(frozen=True)
class TemperaturePlan:
    """The resolved schedule of one run."""

    values: tuple[float, ...]
    ratios: tuple[float, ...]

    @classmethod
    def from_config(cls, cfg: TemperatureConfig) -> TemperaturePlan:
        k = len(cfg.values)
        ratios = tuple(cfg.ratios) if cfg.ratios is not None else tuple([1.0 / k] * k)
        return cls(values=tuple(float(v) for v in cfg.values), ratios=ratios)

    def counts(self, slots: int) -> list[int]:
        """How many of `slots` each value gets."""
        return allocate(slots, self.ratios)

    def for_slots(self, slots: int) -> list[float]:
        """The temperature of each of `slots` slots, exact shares, interleaved."""
        return [self.values[i] for i in interleave(self.counts(slots))]

    def tag(self) -> str:
        """A short label of the values and shares, used in run names: `T0.8`, `T0.4-0.8-1.2`."""
        values = "-".join(_fmt(v) for v in self.values)
        k = len(self.values)
        if all(abs(r - 1.0 / k) < 1e-9 for r in self.ratios):
            return f"T{values}"
        return f"T{values}_r{'-'.join(_fmt(r) for r in self.ratios)}"


def _fmt(x: float) -> str:
    return f"{x:g}"
