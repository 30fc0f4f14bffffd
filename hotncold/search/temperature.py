"""Temperature schedules: how a budget is spread over temperatures, in which order, at which depth.

Every approach asks one question, `TemperaturePlan.deal(sizes, depth, first)`: the temperatures
of the samples drawn together, one allocation at a time (Best-of-N: the n completions of a
problem, one parent of n slots; beam search and DVTS: one iteration of a problem, its parents
expanded `sizes[b]` times each, at search depth `depth`, 0 for the first step). Two parts
compose by multiplication:

- per slot, `values` in their `ratios`: the allocation's counts are exact (largest remainder
  over all its slots, `allocate`), every parent's own counts are within one of its share
  (`deal`), and each parent's slots are interleaved (`interleave`) so any first slots already
  mix the temperatures in their target shares. hotncold's own metrics at N < n average random
  subsets, not the first N;
- per depth, a `schedule` factor (`factor`): 1 for `constant`, else it moves from `start` to
  `end` (`linear`, `cosine` over `horizon` steps; `switch` after `switch_at` steps).

Rounding never favours a value: when a budget does not split exactly (n=8 over three values),
the values whose remainders tie get the extra samples in cyclic order from `first`, and the
approaches rotate `first` by a per-problem offset (`rotation`, derived from the run seed and the
problem) plus the depth. So the extra samples go to each value in turn over consecutive depths,
to no value in particular across problems, and to each parent (the best-ranked beam included)
in turn. Without that, the earliest value (usually the coldest) would get every extra sample.

A multiplier (rather than absolute schedule temperatures) keeps the per-beam mix's shape at
every depth, keeps greedy slots greedy, and with `values=[1.0]` makes `start` and `end` the
temperatures themselves.

The rules of the `temperature` settings live here too (`check_temperature`, run by
`hotncold.experiment.validate`): a plan must be valid and fit the budget it is spread over.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hotncold.config import ApproachConfig, ConfigError, TemperatureConfig
from hotncold.engine.requests import derive_seed

EPS = 1e-9
"""Slack for floating-point shares (0.1 + 0.2 of 10 is 3, not 2.9999...)."""


def _cyclic(i: int, first: int, k: int) -> int:
    """Position of index i in the cyclic order first, first + 1, ..., first - 1 (mod k)."""
    return (i - first) % k


def allocate(total: int, ratios: Sequence[float], first: int = 0) -> list[int]:
    """Split `total` into integer counts proportional to `ratios` (largest remainder method).

    Every count is within one of its exact share and they sum to `total`. Ties in the
    remainder go to the entries in cyclic order from `first` (0: the earlier entry), so the
    result is deterministic and a caller that rotates `first` favours no entry.
    """
    if total < 0:
        raise ValueError("total must be >= 0")
    weight = float(sum(ratios))
    if weight <= 0:
        raise ValueError("ratios must have a positive sum")
    k = len(ratios)
    quotas = [total * r / weight for r in ratios]
    counts = [math.floor(q + EPS) for q in quotas]
    remainders = [q - c for q, c in zip(quotas, counts)]
    order = sorted(range(k), key=lambda i: (-round(remainders[i], 9), _cyclic(i, first, k)))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def interleave(counts: Sequence[int], first: int = 0) -> list[int]:
    """Order `sum(counts)` slots so that every prefix is as close to the final shares as possible.

    At each position the index furthest behind its target share goes next (ties in cyclic
    order from `first`): every prefix of length p holds each index within one of `p * share`.
    """
    k = len(counts)
    total = sum(counts)
    placed = [0] * k
    order: list[int] = []
    for position in range(1, total + 1):
        deficits = [position * c / total - placed[i] for i, c in enumerate(counts)]
        best = max(
            (i for i, c in enumerate(counts) if placed[i] < c),
            key=lambda i: (round(deficits[i], 9), -_cyclic(i, first, k)),
        )
        placed[best] += 1
        order.append(best)
    return order


def deal(sizes: Sequence[int], ratios: Sequence[float], first: int = 0) -> list[list[int]]:
    """The value index of every slot of parents expanded `sizes[b]` times, drawn together.

    - The counts over all slots are `allocate(sum(sizes), ratios, first)`: exactly what one
      allocation of that many samples gives (Best-of-N's rule).
    - Each parent's counts are within one of its own share (floor or ceil of
      `sizes[b] * ratio`), so a parent expanded m times tries every value whose share of m is
      at least one, and no parent gets more than one extra sample of any value.
    - The extra samples (what the floors leave) are handed out value by value in cyclic order
      from `first`, each to the parent with the most extras still to take, ties to the next
      parent in turn: parent 0 (the best-ranked beam) gets the first value's extra, the next
      parents the next values', and rotating `first` rotates who gets which.
    - Each parent's slots are in `interleave` order.

    Handing out the extras is a small transportation problem (parents x values, at most one
    extra per pair); when the greedy choice leaves a value with no parent that has room, an
    augmenting path moves earlier extras to make room (bipartite matching), which finds a
    solution whenever one exists. tests/test_temperature.py checks every shape the searches
    produce. Were there none, the rest would go to any parent with room: the totals stay exact
    and only the per-parent bound loosens.
    """
    k, parents = len(ratios), len(sizes)
    weight = float(sum(ratios))
    totals = allocate(sum(sizes), ratios, first)
    exact = [[s * r / weight for r in ratios] for s in sizes]
    floors = [[math.floor(x + EPS) for x in row] for row in exact]
    rows = [list(f) for f in floors]
    extras = [s - sum(f) for s, f in zip(sizes, floors)]

    def open_pair(b: int, v: int) -> bool:  # parent b may take one more of value v
        return exact[b][v] - floors[b][v] > EPS and rows[b][v] == floors[b][v]

    cursor = 0
    for v in sorted(range(k), key=lambda i: _cyclic(i, first, k)):
        for _ in range(totals[v] - sum(f[v] for f in floors)):
            fits = [b for b in range(parents) if extras[b] > 0 and open_pair(b, v)]
            if fits:
                b = max(fits, key=lambda b: (extras[b], -((b - cursor) % parents)))
                rows[b][v] += 1
                extras[b] -= 1
                cursor = (b + 1) % parents
            elif not _augment(v, rows, floors, extras, open_pair):
                b = next(b for b in range(parents) if extras[b] > 0)
                rows[b][v] += 1
                extras[b] -= 1
    return [interleave(cs, first) for cs in rows]


def _augment(
    v: int,
    rows: list[list[int]],
    floors: list[list[int]],
    extras: list[int],
    open_pair: Callable[[int, int], bool],
) -> bool:
    """Place one extra of value v by a chain of moves: v goes to a full parent b, which hands
    one of its extras (value w) to another parent, ... until a parent with room takes one.
    Breadth first, so the chain is as short as possible. False when no chain exists."""
    came: dict[int, tuple[int, int] | None] = {v: None}  # value -> (parent, value it came from)
    queue = [v]
    for value in queue:
        for b in range(len(rows)):
            if not open_pair(b, value):
                continue
            if extras[b] > 0:
                # walk the chain back: b takes `value`; each earlier parent swaps one extra
                rows[b][value] += 1
                extras[b] -= 1
                step = came[value]
                while step is not None:
                    parent, before = step
                    rows[parent][value] -= 1
                    rows[parent][before] += 1
                    value, step = before, came[before]
                return True
            for w in range(len(rows[b])):
                if rows[b][w] > floors[b][w] and w not in came:
                    came[w] = (b, value)
                    queue.append(w)
    return False


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

    def rotation(self, seed: int, uid: str, depth: int = 0) -> int:
        """`first` for problem `uid` at `depth`: a per-problem offset (from the run seed and the
        problem, so a problem's samples never depend on which problems share its run or shard)
        plus the depth, so the extra samples of an uneven split go to each value in turn."""
        k = max(1, len(self.values))
        return (derive_seed(seed, uid, "temperature rotation") + depth) % k

    def deal(self, sizes: Sequence[int], depth: int = 0, first: int = 0) -> list[list[float]]:
        """The temperature of every slot of parents expanded `sizes[b]` times together at
        `depth` (see the module function `deal`), times the schedule's factor.

        Rounded to 6 decimals so that a schedule's floating-point noise never makes two
        equal temperatures look different in records or requests.
        """
        f = self.factor(depth)
        return [
            [round(self.values[i] * f, 6) for i in row]
            for row in _dealt(tuple(sizes), self.ratios, first)
        ]

    def counts(self, slots: int, first: int = 0) -> list[int]:
        """How many of `slots` each value gets."""
        return allocate(slots, self.ratios, first)

    def for_slots(self, slots: int, first: int = 0) -> list[float]:
        """The value of each of `slots` slots of one allocation: exact shares, interleaved."""
        return [self.values[i] for i in _dealt((slots,), self.ratios, first)[0]]

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


@functools.lru_cache(maxsize=1024)
def _dealt(
    sizes: tuple[int, ...], ratios: tuple[float, ...], first: int
) -> tuple[tuple[int, ...], ...]:
    # cached: a search asks for the same few shapes once per problem and iteration
    return tuple(tuple(row) for row in deal(sizes, ratios, first))


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
    if approach.name == "adaptive_bon":
        # the values are the ladder the probe picks from, coldest first; no shares to split
        if k < 2:
            raise ConfigError(
                f"adaptive_bon picks the rest's temperature from temperature.values, and "
                f"{list(t.values)} leaves nothing to choose; give a ladder, e.g. "
                "temperature=multi (0.4, 0.8, 1.2)"
            )
        if t.ratios is not None:
            raise ConfigError(
                "temperature.ratios has no effect under adaptive_bon (its probe picks one of "
                "temperature.values for the rest); set temperature.ratios=null"
            )
        thresholds = getattr(approach, "thresholds", None)
        if thresholds is not None and len(thresholds) != k - 1:
            raise ConfigError(
                f"approach.thresholds has {len(thresholds)} cut points for {k} temperatures; "
                f"give {k - 1} (one fewer than temperature.values), or null for equal bins"
            )
    elif approach.name in ("best_of_n", "particle_filter"):
        if n < k:
            raise ConfigError(
                f"n={n} is smaller than the {k} temperatures in temperature.values; "
                f"raise n to at least {k}"
            )
        shares = t.ratios or [1.0 / k] * k
        # every rotation of the remainder ties (`rotation` moves `first` from problem to
        # problem): a tie between a value at 0.5 and one at 1.5 leaves the first with none for
        # some problems even when `first=0` gives it one
        by_first = [allocate(n, shares, first) for first in range(k)]
        for i, (value, ratio) in enumerate(zip(t.values, shares)):
            counts = [a[i] for a in by_first]
            if ratio > 0 and min(counts) == 0:
                some = " for some problems" if max(counts) > 0 else ""
                raise ConfigError(
                    f"temperature {value} (ratio {ratio:g}) gets 0 of n={n} completions"
                    f"{some}; raise n or its ratio"
                )
    elif approach.name in ("beam_search", "dvts") and approach.beam_width >= 1:
        # every beam's m expansions are split over the values, each parent getting the floor
        # or the ceiling of its share (`deal`): a share below one would skip some beams
        m = approach.beam_width
        shares = t.ratios or [1.0 / k] * k
        for value, ratio in zip(t.values, shares):
            if ratio > 0 and m * ratio < 1 - EPS:
                raise ConfigError(
                    f"temperature {value} (ratio {ratio:g}) gets {m * ratio:.3g} of the "
                    f"approach.beam_width={m} expansions of a beam, less than one; raise "
                    f"beam_width (a multiple of {k} tries every temperature) or change "
                    "temperature.ratios"
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
    if approach.name in ("best_of_n", "adaptive_bon"):
        raise ConfigError(
            f"temperature.schedule={t.schedule} changes the temperature per step, but "
            f"{approach.name} samples whole solutions; use approach=dvts approach.beam_width=1 "
            "(n independent solutions sampled step by step), approach=beam_search or "
            "approach=particle_filter"
        )
