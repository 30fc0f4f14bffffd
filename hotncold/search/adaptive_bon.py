"""Adaptive Best-of-N: a cold probe per problem, then the rest of the budget at a temperature
chosen from how much the probe agrees with itself.

Semantics, for budget n, per problem (settings: `approach=adaptive_bon`, `AdaptiveBoNConfig`):

1. Probe: p = max(2, ceil(probe_fraction * n)) samples at `probe_temperature` (null: the
   coldest of `temperature.values`), all problems in one engine call, then one PRM call.
2. Signal: the probe's disagreement d in [0, 1]. Answers are the extracted final answers
   (`evaluation.grading.extract_answer`) compared by their normalised string (`normalize`:
   cheap and deterministic; math-verify's equivalence is for grading). Under `finished_only`
   an unfinished sample has no answer. `unanswered` says how samples without an answer count:
   `ignore` (default) reads the answered ones only, p below being their number, and a probe
   with fewer than two answers has d = 0; `distinct` counts each as an answer of its own.
   - majority: d = (1 - s) / (1 - 1/p), s the majority answer's share (0 when all agree, 1
     when all differ);
   - entropy: d = H / log(p), H the entropy of the answers' shares;
   - prm_spread: d = max - min of the probe's aggregated PRM scores (`prm.agg_strategy`),
     clipped to [0, 1].
3. Mapping: the ladder is `temperature.values` sorted, coldest first (k values); the rest is
   sampled at ladder[i] with i = the number of `thresholds` that d reaches (d >= t), or, with
   `thresholds: null`, i = min(k - 1, floor(k * d)) (equal bins). So an agreeing probe stays
   at the coldest value and a split one heats up; p = 2 under `majority` gives d in {0, 1}:
   the coldest or the hottest value.
4. Rest: n - p samples at the chosen temperature, all problems in one engine call, then one
   PRM call. Budget: p + (n - p) = n completions, every one of them kept and counted.

The n completions are the probe's first, then the rest's (`extra.phase`), each its own group
like Best-of-N's samples; every completion's `extra.adaptive` holds the problem's decision
(probe size, signal, disagreement, probe and chosen temperatures). Metrics at N < n average
random subsets of those n samples; the adaptive policy itself ran at budget n, which is the
budget the analyzer compares it at. Two engine calls and two PRM calls per batch.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from hotncold.config import AdaptiveBoNConfig, ApproachConfig
from hotncold.data import Problem
from hotncold.engine import answer_stop
from hotncold.engine.requests import Generation, derive_seed
from hotncold.evaluation.grading import extract_answer, normalize
from hotncold.prm.base import aggregate
from hotncold.search.base import Completion, SearchContext, sampling_extra
from hotncold.search.best_of_n import greedy_repeated, sample_completion, whole_solutions

SIGNALS = ("majority", "entropy", "prm_spread")
EPS = 1e-9


def probe_size(fraction: float, n: int) -> int:
    """Samples of the probe: the budget's share rounded up, at least 2."""
    return max(2, math.ceil(fraction * n - EPS))


UNANSWERED = ("ignore", "distinct")
"""`approach.unanswered`: how a probe sample without an answer counts (module doc, step 2)."""


def disagreement(
    signal: str,
    answers: Sequence[str | None],
    scores: Sequence[float],
    unanswered: str = "ignore",
) -> float:
    """The probe's disagreement in [0, 1] (module doc, step 2); `answers` None for none."""
    if signal == "prm_spread":
        return min(1.0, max(0.0, max(scores) - min(scores)))
    if unanswered == "ignore":
        keys: list = [a for a in answers if a is not None]
        if len(keys) < 2:
            return 0.0  # one answer or none cannot disagree
    elif unanswered == "distinct":
        keys = [a if a is not None else ("none", i) for i, a in enumerate(answers)]
    else:
        raise ValueError(f"unknown unanswered={unanswered!r}; use one of {', '.join(UNANSWERED)}")
    p = len(keys)
    counts = Counter(keys).values()
    if signal == "majority":
        return (1 - max(counts) / p) / (1 - 1 / p)
    if signal == "entropy":
        return -sum(c / p * math.log(c / p) for c in counts) / math.log(p)
    raise ValueError(f"unknown adaptive_bon signal {signal!r}; use one of {', '.join(SIGNALS)}")


def choose(d: float, ladder: Sequence[float], thresholds: Sequence[float] | None) -> float:
    """The rest's temperature for disagreement d (module doc, step 3)."""
    k = len(ladder)
    if thresholds is None:
        i = min(k - 1, math.floor(k * d + EPS))
    else:
        i = sum(d >= t - EPS for t in thresholds)
    return ladder[i]


def policy(a: ApproachConfig) -> AdaptiveBoNConfig:
    return a if isinstance(a, AdaptiveBoNConfig) else AdaptiveBoNConfig()


class AdaptiveBestOfN:
    name = "adaptive_bon"

    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        a = policy(ctx.approach)
        ladder = sorted(ctx.plan.values)
        cold = ladder[0] if a.probe_temperature is None else float(a.probe_temperature)
        p = probe_size(a.probe_fraction, ctx.n)

        probes = self._sample(ctx, problems, prompts, [cold] * len(problems), p, "probe")
        chosen, decisions = [], []
        for probe in probes:
            answers = [_answer(c, a.finished_only) for c in probe]  # as votes read them
            scores = [aggregate(c.step_scores, ctx.agg_strategy) for c in probe]
            d = disagreement(a.signal, answers, scores, a.unanswered)
            t = choose(d, ladder, a.thresholds)
            chosen.append(t)
            decisions.append(
                {
                    "probe": p,
                    "rest": ctx.n - p,
                    "signal": a.signal,
                    "answered": sum(x is not None for x in answers),
                    "disagreement": round(d, 6),
                    "probe_temperature": cold,
                    "chosen_temperature": t,
                }
            )
        rests = self._sample(ctx, problems, prompts, chosen, ctx.n - p, "rest")

        out = []
        for probe, rest, decision in zip(probes, rests, decisions):
            completions = probe + rest
            extra = sampling_extra(Counter(c.temperature for c in completions), 2)
            for slot, c in enumerate(completions):
                c.group = slot
                c.extra.update(extra, adaptive=decision)
            out.append(completions)
        return out

    def _sample(
        self,
        ctx: SearchContext,
        problems: Sequence[Problem],
        prompts: Sequence[str],
        temperatures: Sequence[float],
        count: int,
        phase: str,
    ) -> list[list[Completion]]:
        """`count` samples per problem at its temperature: one engine call, one PRM call."""
        requests = [
            whole_solutions(
                ctx, p, prompt, t, count, derive_seed(ctx.seed, p.uid, self.name, phase, t)
            )
            for p, prompt, t in zip(problems, prompts, temperatures)
        ]
        generated: list[list[Generation]] = answer_stop.generate(ctx.engine, requests)
        completions = []
        for t, samples in zip(temperatures, generated):
            samples = greedy_repeated(samples, t, count)
            completions.append(
                [
                    sample_completion(g, t, ctx.model.step_delimiter, 0, {"phase": phase})
                    for g in samples
                ]
            )
        pairs = [(p.problem, c.steps) for p, cs in zip(problems, completions) for c in cs]
        scores = iter(ctx.prm.score(pairs))
        for cs in completions:
            for c in cs:
                c.step_scores = next(scores)
        return completions


def _answer(c: Completion, finished_only: bool) -> str | None:
    if finished_only and not c.finished:
        return None
    answer = extract_answer(c.text)
    return normalize(answer) if answer is not None else None
