"""Bootstrap confidence intervals over problems and seeds, and paired differences.

A quantity is given as a cube `values[k, s, p]`: K quantities (configurations, methods, N) by
S seeds by P problems, NaN where a (seed, problem) was not run. Its estimate is the mean over
the cells present. The bootstrap resamples problems and seeds with replacement (a two-way
bootstrap of the crossed design), the same resample for all K quantities, and reports
percentile intervals. A paired comparison is the bootstrap of a difference cube (A - B on the
same problems and seeds), so problem difficulty cancels out of its interval.

Written here rather than taken from scipy.stats.bootstrap: that one resamples one axis of
independent observations; the crossed problems x seeds design with missing cells needs weights
on both axes, which is a few lines of linear algebra.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval, in the units of the input (accuracy in [0, 1])."""

    mean: float
    lo: float
    hi: float
    problems: int
    seeds: int

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0 (for differences)."""
        return bool(self.lo > 0 or self.hi < 0)

    def columns(self) -> dict[str, float | int]:
        """The estimate as the columns of a table's row (mean, lo, hi, problems, seeds)."""
        return {
            "mean": self.mean,
            "lo": self.lo,
            "hi": self.hi,
            "problems": self.problems,
            "seeds": self.seeds,
        }


def rng_for(seed: int, *key: object) -> np.random.Generator:
    """A generator fixed by the user's seed and a stable description of what it resamples, so
    one statistic's interval does not change when other runs are added to the analysis."""
    digest = zlib.crc32("|".join(str(k) for k in key).encode())
    return np.random.default_rng([seed, digest])


def bootstrap(
    values: np.ndarray, resamples: int, rng: np.random.Generator, level: float = 0.95
) -> list[Estimate]:
    """Mean and percentile interval of each of the K quantities in `values[k, s, p]`."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 3:
        raise ValueError("values must be a (quantities, seeds, problems) cube")
    k, s, p = values.shape
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    count = present.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        point = filled.sum(axis=(1, 2)) / count
    problems = present.any(axis=1).sum(axis=1)
    seeds = present.any(axis=2).sum(axis=1)
    if s == 0 or p == 0:
        return [Estimate(np.nan, np.nan, np.nan, 0, 0) for _ in range(k)]
    # multinomial counts: how often each problem (seed) is drawn in each resample
    w = rng.multinomial(p, np.full(p, 1.0 / p), size=resamples).astype(float)  # (B, P)
    v = rng.multinomial(s, np.full(s, 1.0 / s), size=resamples).astype(float)  # (B, S)
    total = np.einsum("ksb,bs->kb", filled @ w.T, v)
    weight = np.einsum("ksb,bs->kb", present.astype(float) @ w.T, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = total / weight  # (K, B); NaN where a resample drew only missing cells
    tail = (1.0 - level) / 2.0 * 100.0
    out = []
    for i in range(k):
        row = means[i][~np.isnan(means[i])]
        lo, hi = (
            np.percentile(row, [tail, 100.0 - tail]) if row.size and count[i] else (np.nan,) * 2
        )
        out.append(Estimate(float(point[i]), float(lo), float(hi), int(problems[i]), int(seeds[i])))
    return out
