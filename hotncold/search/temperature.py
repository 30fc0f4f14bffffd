"""Temperature schedules: how a budget is spread over temperatures, in which order, at which depth.

Every approach asks one question, `TemperaturePlan.temperature(slot, slots, depth)`: the
temperature of sampling slot `slot` of `slots` (the n completions of Best-of-N, the m expansions
of a beam) when generating the step at search depth `depth` (0 for the first step). Two parts
compose by multiplication:

- per slot, `values` in their `ratios` (`for_slots`): allocation is exact (largest remainder)
  and interleaved, so any first slots (a reader taking the first N completions, a beam whose m
  expansions are fewer than the mix needs) already mix the temperatures in their target shares;
  with equal ratios slot j gets `values[j % k]`. hotncold's own metrics at N < n average random
  subsets, not the first N;
- per depth, a `schedule` factor (`factor`): 1 for `constant`, else it moves from `start` to
  `end` (`linear`, `cosine` over `horizon` steps; `switch` after `switch_at` steps).

A multiplier (rather than absolute schedule temperatures) keeps the per-beam mix's shape at
every depth, keeps greedy slots greedy, and with `values=[1.0]` makes `start` and `end` the
temperatures themselves.

The rules of the `temperature` settings live here too (`check_temperature`, run by
`hotncold.experiment.validate`): a plan must be valid and fit the budget it is spread over.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from hotncold.config import ApproachConfig, ConfigError, TemperatureConfig


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


SCHEDULES = ("constant", "linear", "cosine", "switch")


@dataclass(frozen=True)
class TemperaturePlan:
    """The resolved schedule of one run."""

    values: tuple[float, ...]
    ratios: tuple[float, ...]
    schedule: str = "constant"
    start: float = 1.0
    end: float = 1.0
    horizon: int = 8
    switch_at: int = 2

    @classmethod
    def from_config(cls, cfg: TemperatureConfig) -> TemperaturePlan:
        k = len(cfg.values)
        # no division for k == 0: run names are resolved before validate() can refuse it
        ratios = tuple(cfg.ratios) if cfg.ratios is not None else tuple(1.0 / k for _ in range(k))
        return cls(
            values=tuple(float(v) for v in cfg.values),
            ratios=ratios,
            schedule=cfg.schedule,
            start=float(cfg.start),
            end=float(cfg.end),
            horizon=int(cfg.horizon),
            switch_at=int(cfg.switch_at),
        )

    @property
    def constant(self) -> bool:
        """Whether every depth samples at the same temperatures (the schedule is constant)."""
        return self.schedule == "constant"

    def factor(self, depth: int) -> float:
        """The schedule's multiplier for the step at `depth` (0 is the first step)."""
        if self.schedule == "constant":
            return 1.0
        if self.schedule == "switch":
            return self.start if depth < self.switch_at else self.end
        progress = min(max(depth, 0), self.horizon) / self.horizon
        if self.schedule == "linear":
            return self.start + (self.end - self.start) * progress
        if self.schedule == "cosine":
            return self.end + (self.start - self.end) * (1 + math.cos(math.pi * progress)) / 2
        raise ValueError(f"unknown temperature schedule {self.schedule!r}")

    def temperature(self, slot: int, slots: int, depth: int = 0) -> float:
        """The temperature of slot `slot` of `slots` for the step at search depth `depth`.

        Rounded to 6 decimals so that a schedule's floating-point noise never makes two
        equal temperatures look different in records or requests.
        """
        return round(self.for_slots(slots)[slot] * self.factor(depth), 6)

    def counts(self, slots: int) -> list[int]:
        """How many of `slots` each value gets."""
        return allocate(slots, self.ratios)

    def for_slots(self, slots: int) -> list[float]:
        """The temperature of each of `slots` slots, exact shares, interleaved."""
        return [self.values[i] for i in _slot_order(slots, self.ratios)]

    def tag(self) -> str:
        """A short label of the values, shares and schedule, used in run names: `T0.8`,
        `T0.4-0.8-1.2`, `T0.4-1.2_r0.75-0.25`, `T1_lin1.2-0.4h8`, `T1_cos1.2-0.4h8`,
        `T1_sw1.2-0.4at2`."""
        values = "-".join(_fmt(v) for v in self.values)
        k = len(self.values)
        tag = f"T{values}"
        if not all(abs(r - 1.0 / k) < 1e-9 for r in self.ratios):
            tag += f"_r{'-'.join(_fmt(r) for r in self.ratios)}"
        span = f"{_fmt(self.start)}-{_fmt(self.end)}"
        if self.schedule == "linear":
            tag += f"_lin{span}h{self.horizon}"
        elif self.schedule == "cosine":
            tag += f"_cos{span}h{self.horizon}"
        elif self.schedule == "switch":
            tag += f"_sw{span}at{self.switch_at}"
        return tag


@functools.lru_cache(maxsize=256)
def _slot_order(slots: int, ratios: tuple[float, ...]) -> tuple[int, ...]:
    # cached: a search asks for the same few slot counts once per candidate
    return tuple(interleave(allocate(slots, ratios)))


def _fmt(x: float) -> str:
    return f"{x:g}"


# -- the rules of the temperature settings (run by hotncold.experiment.validate) -------------


def check_temperature(t: TemperatureConfig, approach: ApproachConfig, n: int) -> None:
    """Raise ConfigError naming the fix for a schedule the run could not follow: the values
    themselves, then their split over the budget `n` or over a beam's expansions."""
    if not t.values:
        raise ConfigError("temperature.values is empty; give at least one, e.g. [0.8]")
    for v in t.values:
        if not math.isfinite(v) or v < 0:
            raise ConfigError(
                f"temperature {v} is invalid; temperatures must be >= 0 (0 is greedy)"
            )
    if t.ratios is not None:
        if len(t.ratios) != len(t.values):
            raise ConfigError(
                f"temperature.ratios has {len(t.ratios)} entries for {len(t.values)} values; "
                "give one ratio per value"
            )
        if any(r < 0 for r in t.ratios):
            raise ConfigError(f"temperature.ratios {list(t.ratios)} has a negative share")
        if abs(sum(t.ratios) - 1.0) > 1e-6:
            raise ConfigError(
                f"temperature.ratios {list(t.ratios)} sum to {sum(t.ratios):g}; they must sum to 1"
            )
    if len(set(t.values)) != len(t.values):
        raise ConfigError(f"temperature.values {list(t.values)} repeats a value; list each once")
    _check_schedule(t, approach)
    k = len(t.values)
    if approach.name == "best_of_n":
        if n < k:
            raise ConfigError(
                f"n={n} is smaller than the {k} temperatures in temperature.values; "
                f"raise n to at least {k}"
            )
        counts = allocate(n, t.ratios or [1.0 / k] * k)
        for value, ratio, count in zip(t.values, t.ratios or [1.0 / k] * k, counts):
            if ratio > 0 and count == 0:
                raise ConfigError(
                    f"temperature {value} (ratio {ratio:g}) gets 0 of n={n} completions; "
                    "raise n or its ratio"
                )
    elif approach.name in ("beam_search", "dvts") and approach.beam_width >= 1:
        # every beam's m expansions are split over the values: each must get at least one
        m = approach.beam_width
        shares = t.ratios or [1.0 / k] * k
        for value, ratio, count in zip(t.values, shares, allocate(m, shares)):
            if ratio > 0 and count == 0:
                raise ConfigError(
                    f"temperature {value} (ratio {ratio:g}) gets 0 of the "
                    f"approach.beam_width={m} expansions of a beam; raise beam_width "
                    f"(a multiple of {k} tries every temperature) or change temperature.ratios"
                )


def _check_schedule(t: TemperatureConfig, approach: ApproachConfig) -> None:
    if t.schedule not in SCHEDULES:
        raise ConfigError(
            f"temperature.schedule={t.schedule!r} is unknown; use one of {', '.join(SCHEDULES)}"
        )
    for key in ("start", "end"):
        value = getattr(t, key)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"temperature.{key}={value} must be a factor >= 0")
    if t.schedule == "constant":
        if t.start != 1.0 or t.end != 1.0:
            raise ConfigError(
                f"temperature.start={t.start:g}/end={t.end:g} have no effect with "
                "temperature.schedule=constant; set temperature.schedule=linear, cosine or "
                "switch (or leave start and end at 1)"
            )
        return
    if t.horizon < 1:
        raise ConfigError(f"temperature.horizon={t.horizon} must be at least 1 step")
    if t.switch_at < 1:
        raise ConfigError(f"temperature.switch_at={t.switch_at} must be at least 1 step")
    if approach.name == "best_of_n":
        raise ConfigError(
            f"temperature.schedule={t.schedule} changes the temperature per step, but best_of_n "
            "samples whole solutions; use approach=dvts approach.beam_width=1 (n independent "
            "solutions sampled step by step) or approach=beam_search"
        )
