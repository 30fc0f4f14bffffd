"""Particle filtering's resampling: tempered weights from PRM scores, and the two schemes.

Weights are proportional to exp(signal / tau), computed max-shifted (a softmax) so no score
overflows. The signal is the logit of the particle's aggregated PRM score, clipped to
[1e-7, 1 - 1e-7] as its_hub's `_inv_sigmoid` clips it (its_hub/algorithms/particle_gibbs.py,
whose softmax has no temperature: tau = 1), or the score itself (REBASE's softmax over raw
rewards, thu-wyz/inference_scaling rebase.py `select_softmax`).

Written here rather than taken from a library: the two schemes are a few lines each over
Python's `random.Random`, whose draws are reproducible from a seed on every platform, and the
particle filter needs nothing else of a sequential Monte Carlo package.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence

CLIP = 1e-7
"""Scores are clipped to [CLIP, 1 - CLIP] before the logit (its_hub's bound)."""

SIGNALS = ("logit", "score")
SCHEMES = ("multinomial", "systematic")


def signal_of(score: float, signal: str) -> float:
    """What the weights exponentiate: the score's logit, or the score."""
    if signal == "score":
        return score
    if signal == "logit":
        x = min(max(score, CLIP), 1 - CLIP)
        return math.log(x / (1 - x))
    raise ValueError(f"unknown resampling signal {signal!r}; use one of {', '.join(SIGNALS)}")


def weights(scores: Sequence[float], tau: float, signal: str = "logit") -> list[float]:
    """Normalised weights proportional to exp(signal(score) / tau)."""
    if tau <= 0:
        raise ValueError("the resampling temperature tau must be positive")
    values = [signal_of(s, signal) / tau for s in scores]
    top = max(values)
    raw = [math.exp(v - top) for v in values]
    total = sum(raw)
    return [w / total for w in raw]


def effective_size(ws: Sequence[float]) -> float:
    """The effective sample size 1 / sum(w^2) of normalised weights: n when uniform, 1 when
    one particle holds all the weight."""
    return 1.0 / sum(w * w for w in ws)


def resample(ws: Sequence[float], k: int, scheme: str, rng: random.Random) -> list[int]:
    """`k` indices drawn in proportion to the weights `ws` (normalised or not), in ascending
    order of index.

    - multinomial: k independent draws with replacement (its_hub's `random.choices`); a
      particle with weight w is drawn k * w times on average, with binomial spread;
    - systematic: one uniform offset u in [0, 1/k), positions u + i/k, each taking the
      particle whose cumulative weight interval holds it: every particle gets the floor or the
      ceiling of k * w copies (Kitagawa 1996; Douc, Cappe & Moulines 2005), the same mean with
      less variance.
    """
    total = float(sum(ws))
    if total <= 0:
        raise ValueError("resampling weights must have a positive sum")
    cumulative = list(itertools.accumulate(w / total for w in ws))
    cumulative[-1] = 1.0  # no draw may fall past the last interval through rounding
    if scheme == "multinomial":
        draws = [rng.random() for _ in range(k)]
    elif scheme == "systematic":
        offset = rng.random() / k
        draws = [offset + i / k for i in range(k)]
    else:
        raise ValueError(f"unknown resampling scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
    last = len(ws) - 1
    return sorted(min(bisect.bisect_right(cumulative, u), last) for u in draws)
