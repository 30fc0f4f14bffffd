"""The temperature shares a run realised: what it sampled, and what its outputs are made of.

A mix's ratios are what was asked for; what a run sampled can differ (a budget that does not
split exactly, an old run's per-beam split). Every approach records per problem the samples it
drew at each temperature (`extra.sampled_temperatures`) and the number of allocations that drew
them (`extra.allocations`); `temperature_shares` sums them over a run's records, with the
final completions' steps (`step_temperatures`) beside them, for run.json and the analyzer.

`differs` says when realised shares are not the nominal ones beyond what exact allocation
explains: every allocation rounds each value's count by less than one sample, and the
approaches rotate who gets the extra samples so the rounding averages out; over U allocations
the deviation of a value's count then stays within sqrt(2 U ln(2k / alpha)) samples with
probability 1 - alpha (Hoeffding's bound for U terms in (-1, 1), over k values), alpha = 0.001.
A larger deviation means the mix was not what its ratios say (the analyzer then labels it by
its realised shares). Keys are temperatures written with `%g`, as in the records.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from hotncold.config import TemperatureConfig

ALPHA = 0.001
"""Chance that exact allocation alone deviates beyond `differs`'s bound."""


def nominal_shares(t: TemperatureConfig | dict[str, Any]) -> dict[str, float]:
    """The share of each value the config asks for (`%g` keys, in the order of `values`)."""
    values = list(t.values if isinstance(t, TemperatureConfig) else t.get("values") or [])
    ratios = t.ratios if isinstance(t, TemperatureConfig) else t.get("ratios")
    ratios = list(ratios) if ratios else [1.0] * len(values)
    total = float(sum(ratios)) or 1.0
    return {f"{float(v):g}": float(r) / total for v, r in zip(values, ratios)}


def _counted(counts: Counter[str]) -> dict[str, Any]:
    total = sum(counts.values())
    return {
        "counts": dict(sorted(counts.items(), key=lambda kv: float(kv[0]))),
        "shares": {
            k: round(c / total, 6) for k, c in sorted(counts.items(), key=lambda kv: float(kv[0]))
        },
    }


def temperature_shares(
    records: Iterable[dict[str, Any]], t: TemperatureConfig | dict[str, Any]
) -> dict[str, Any]:
    """run.json's `temperature_shares`: `nominal` (the ratios), `sampled` (counts and shares of
    every sample drawn, pruned candidates included), `completion_steps` (of the final
    completions' steps, copies included: what the votes read) and `allocations`."""
    sampled: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    allocations = 0
    for record in records:
        completions = record["completions"]
        extra = (completions[0].get("extra") or {}) if completions else {}
        for key, count in (extra.get("sampled_temperatures") or {}).items():
            sampled[key] += int(count)
        allocations += int(extra.get("allocations") or 0)
        for c in completions:
            steps.update(f"{float(x):g}" for x in c.get("step_temperatures") or [])
    return {
        "nominal": {k: round(v, 6) for k, v in nominal_shares(t).items()},
        "sampled": _counted(sampled),
        "completion_steps": _counted(steps),
        "allocations": allocations,
    }


def differs(shares: dict[str, Any]) -> bool:
    """Whether the sampled counts are off the nominal shares beyond what exact allocation can
    explain (see the module doc). False when nothing was recorded (runs before results
    version 2 recorded no samples)."""
    counts = shares["sampled"]["counts"]
    total = sum(counts.values())
    nominal = shares["nominal"]
    allocations = shares["allocations"]
    if not total or not allocations:
        return False
    if set(counts) - set(nominal):
        return True  # a temperature the mix does not hold (a schedule is never compared)
    bound = math.sqrt(2 * allocations * math.log(2 * len(nominal) / ALPHA))
    return any(abs(counts.get(k, 0) - total * share) > bound for k, share in nominal.items())


def realised_tag(shares: dict[str, Any]) -> str:
    """The suffix naming realised shares, in the order of the values: `_real0.5-0.25-0.25`."""
    counts = shares["sampled"]["counts"]
    total = sum(counts.values())
    return "_real" + "-".join(f"{counts.get(k, 0) / total:.3g}" for k in shares["nominal"])


def pooled(shares: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Several runs' (or shards') `temperature_shares` as one: counts and allocations summed."""
    sampled: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    allocations, nominal = 0, {}
    for s in shares:
        nominal = nominal or s["nominal"]
        sampled.update(s["sampled"]["counts"])
        steps.update(s["completion_steps"]["counts"])
        allocations += s["allocations"]
    return {
        "nominal": nominal,
        "sampled": _counted(sampled),
        "completion_steps": _counted(steps),
        "allocations": allocations,
    }
