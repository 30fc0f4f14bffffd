"""Accuracy at budgets N = 1, 2, 4, ..., n for each way of choosing an answer.

- naive: the completion with the best aggregated PRM score;
- weighted: the answer whose equivalent completions have the largest summed score;
- majority: the most frequent answer;
- pass@N: whether any of N completions is right (the unbiased estimator of Chen et al. 2021);
- soft Best-of-N at selection temperature tau (`metrics.selection_temperatures`): a completion
  picked with probability proportional to exp(score / tau), scored by its exact expected
  accuracy (an expectation over the pick, not a sample of it). tau -> 0 is `naive` (ties
  shared evenly, as naive breaks them at random), a large tau a uniform random pick.

A value at N < n averages many random subsets of size N, never the first N completions, so it
does not depend on the order samples came back in. Ties are broken at random; scores and
tallies within a relative `TIE_RTOL` of each other tie (an absolute tolerance would merge real
differences: under `prod` over long solutions, tallies are 1e-14 and below). When completions
come in groups (DVTS subtrees) a subset takes whole groups.

`approach.finished_only` (default true, the same meaning for every approach): a completion
that is not finished (truncated, `empty_step`, a DVTS sibling left `partial`) has no answer:
it never votes, naive selection never picks it, and it is never correct for pass@N. It still
takes its place in every subset (it cost its tokens). Best-of-N's samples are independent, so
this is where its rule applies; the searches additionally prefer finished candidates when they
choose their n outputs (`hotncold.search.steps.fill`), and this rule covers whatever
unfinished ones they still return. Everything here is a pure function of arrays; the run
writes its inputs to `completions.jsonl` first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb
from typing import TYPE_CHECKING, Any

import numpy as np

from hotncold.prm.base import aggregate

if TYPE_CHECKING:
    from hotncold.config import Config

METHODS = ("naive", "weighted", "majority", "pass")

TIE_RTOL = 1e-9
"""Scores or tallies within this relative distance of the best tie. Sums of the same scores in
another order differ by about 1e-16 relative; real differences are far larger than 1e-9."""


@dataclass(frozen=True)
class ProblemOutcome:
    """What metrics need from one problem's completions."""

    scores: np.ndarray
    """Aggregated PRM score per completion."""
    clusters: np.ndarray
    """Equivalence class of each completion's answer; -1 when it has none."""
    correct: np.ndarray
    """Whether each completion's answer is right."""
    groups: np.ndarray
    """Subset-sampling unit of each completion."""
    eligible: np.ndarray
    """Whether each completion's answer counts (false: unfinished under `finished_only`)."""

    @classmethod
    def of(
        cls,
        scores: Sequence[float],
        clusters: Sequence[int],
        correct: Sequence[bool],
        groups: Sequence[int] | None = None,
        eligible: Sequence[bool] | None = None,
    ) -> ProblemOutcome:
        n = len(scores)
        ok = np.asarray(eligible if eligible is not None else [True] * n, dtype=bool)
        return cls(
            scores=np.asarray(scores, dtype=float),
            # an ineligible completion has no answer and is never right
            clusters=np.where(ok, np.asarray(clusters, dtype=int), -1),
            correct=np.asarray(correct, dtype=bool) & ok,
            groups=np.asarray(groups if groups is not None else range(n), dtype=int),
            eligible=ok,
        )


def budgets(n: int) -> list[int]:
    """1, 2, 4, ... up to n, with n itself always last."""
    out, k = [], 1
    while k < n:
        out.append(k)
        k *= 2
    return [*out, n]


def pass_at(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def soft_key(tau: float) -> str:
    """How a selection temperature names its curve (`%g`: 0.1, 1, 1e-05)."""
    return f"{tau:g}"


def problem_curves(
    outcome: ProblemOutcome,
    ns: Sequence[int],
    num_subsets: int,
    rng: np.random.Generator,
    selection_temperatures: Sequence[float] = (),
) -> dict[str, dict[int, float]]:
    """Accuracy of every method at every N for one problem; soft Best-of-N's at each
    selection temperature under `soft:<tau>` keys (on the same subsets, drawing no extra
    random numbers, so the other methods' values do not depend on the grid)."""
    n = len(outcome.scores)
    soft = [f"soft:{soft_key(t)}" for t in selection_temperatures]
    curves: dict[str, dict[int, float]] = {m: {} for m in (*METHODS, *soft)}
    if n == 0:
        return {m: {k: 0.0 for k in ns} for m in curves}
    cluster_ids = np.unique(outcome.clusters[outcome.clusters >= 0])
    # dense cluster index per completion; column len(cluster_ids) collects missing answers
    dense = np.searchsorted(cluster_ids, outcome.clusters)
    dense[outcome.clusters < 0] = len(cluster_ids)
    cluster_correct = np.zeros(len(cluster_ids) + 1, dtype=bool)
    for i, ok in zip(dense, outcome.correct):
        cluster_correct[i] |= ok
    cluster_correct[-1] = False
    grouped = len(np.unique(outcome.groups)) < n
    for k in ns:
        subsets = (
            _subsets(outcome.groups, k, num_subsets, rng)
            if grouped
            else _plain(n, k, num_subsets, rng)
        )
        curves["naive"][k] = _naive(outcome, subsets, rng)
        for key, tau in zip(soft, selection_temperatures):
            curves[key][k] = soft_best_of_n(outcome, subsets, tau)
        votes = np.zeros((subsets.shape[0], len(cluster_ids) + 1))
        weights = np.zeros_like(votes)
        rows = np.repeat(np.arange(subsets.shape[0]), subsets.shape[1])
        np.add.at(votes, (rows, dense[subsets].ravel()), 1.0)
        np.add.at(weights, (rows, dense[subsets].ravel()), outcome.scores[subsets].ravel())
        present = votes > 0
        present[:, -1] = False  # a missing answer never wins a vote
        curves["majority"][k] = _vote(votes, present, cluster_correct, rng)
        curves["weighted"][k] = _vote(weights, present, cluster_correct, rng)
        if grouped:
            curves["pass"][k] = float(outcome.correct[subsets].any(axis=1).mean())
        else:
            curves["pass"][k] = pass_at(n, int(outcome.correct.sum()), k)
    return curves


def _plain(n: int, k: int, num_subsets: int, rng: np.random.Generator) -> np.ndarray:
    """Random subsets of size k, each in random order (the order breaks ties)."""
    return np.argsort(rng.random((num_subsets, n)), axis=1)[:, :k]


def _subsets(groups: np.ndarray, k: int, num_subsets: int, rng: np.random.Generator) -> np.ndarray:
    """Subsets of size k made of whole groups; below one group's size, part of one group."""
    members = defaultdict(list)
    for index, g in enumerate(groups):
        members[int(g)].append(index)
    units = [np.asarray(v) for v in members.values()]
    size = len(units[0])
    if any(len(u) != size for u in units):
        raise ValueError("groups must have equal sizes to sample whole groups")
    out = np.empty((num_subsets, k), dtype=int)
    for row in range(num_subsets):
        if k <= size:
            unit = units[rng.integers(len(units))]
            out[row] = rng.permutation(unit)[:k]
        else:
            chosen = rng.permutation(len(units))[: -(-k // size)]
            flat = np.concatenate([units[u] for u in chosen])
            out[row] = rng.permutation(flat)[:k]
    return out


def _best(values: np.ndarray, present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row, the column of the largest value among the present ones; ties (within a
    relative TIE_RTOL) broken uniformly at random. Rows with nothing present give column 0."""
    values = np.where(present, values, -np.inf)
    top = values.max(axis=1, keepdims=True)
    tied = present & np.isclose(values, top, rtol=TIE_RTOL, atol=0.0)
    return np.argmax(tied * rng.random(values.shape), axis=1)


def _naive(outcome: ProblemOutcome, subsets: np.ndarray, rng: np.random.Generator) -> float:
    """Accuracy of the best-scored eligible completion of each subset."""
    eligible = outcome.eligible[subsets]
    best = _best(outcome.scores[subsets], eligible, rng)
    chosen = subsets[np.arange(subsets.shape[0]), best]
    return float((outcome.correct[chosen] & eligible.any(axis=1)).mean())


def soft_best_of_n(outcome: ProblemOutcome, subsets: np.ndarray, tau: float) -> float:
    """Expected accuracy, averaged over `subsets`, of picking an eligible completion of each
    with probability exp(score / tau) / sum over its eligible completions (a subset with none
    eligible answers nothing: 0). Exact over the pick; computed relative to each subset's
    best score, so a small tau never overflows."""
    scores = outcome.scores[subsets]
    eligible = outcome.eligible[subsets]
    top = np.where(eligible, scores, -np.inf).max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.where(eligible, np.exp((np.where(eligible, scores, 0.0) - top) / tau), 0.0)
    total = weights.sum(axis=1)
    right = (weights * outcome.correct[subsets]).sum(axis=1)
    return float(np.mean(np.divide(right, total, out=np.zeros_like(right), where=total > 0)))


def _vote(
    tally: np.ndarray, present: np.ndarray, cluster_correct: np.ndarray, rng: np.random.Generator
) -> float:
    """Accuracy of the answer with the largest tally among those present in each subset."""
    pick = _best(tally, present, rng)
    answered = present.any(axis=1)
    return float((cluster_correct[pick] & answered).mean())


def summarize(
    problems: Sequence[dict[str, Any]],
    curves: Sequence[dict[str, dict[int, float]]],
    methods: Sequence[str] = METHODS,
) -> dict[str, Any]:
    """Mean curves overall, per level and per subject. `problems` hold `level` and `subject`."""

    def mean(selected: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {"num_problems": len(selected)}
        for method in methods:
            ns = curves[selected[0]][method].keys()
            out[method] = {
                str(k): float(np.mean([curves[i][method][k] for i in selected])) for k in ns
            }
        return out

    by_level: dict[str, list[int]] = defaultdict(list)
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(problems):
        if p.get("level") is not None:
            by_level[str(p["level"])].append(i)
        if p.get("subject") is not None:
            by_subject[str(p["subject"])].append(i)
    return {
        "overall": mean(list(range(len(problems)))),
        "by_level": {k: mean(v) for k, v in sorted(by_level.items(), key=lambda kv: int(kv[0]))},
        "by_subject": {k: mean(v) for k, v in sorted(by_subject.items())},
    }


def outcome_of(
    record: dict[str, Any], agg_strategy: str | None = None, *, finished_only: bool
) -> ProblemOutcome:
    """The outcome of one `completions.jsonl` record; `agg_strategy` re-aggregates step scores
    (any strategy can be evaluated after the fact, since every step score is stored), and
    `finished_only` (`approach.finished_only`) gives unfinished completions no answer."""
    completions = record["completions"]
    if agg_strategy is None:
        scores = [c["score"] for c in completions]
    else:
        scores = [aggregate(c["step_scores"], agg_strategy) for c in completions]
    return ProblemOutcome.of(
        scores,
        [c["cluster"] for c in completions],
        [c["correct"] for c in completions],
        [c["group"] for c in completions],
        [bool(c["finished"]) or not finished_only for c in completions],
    )


def metrics_from_records(
    records: Sequence[dict[str, Any]],
    n: int,
    num_subsets: int,
    seed: int,
    agg_strategy: str | None = None,
    *,
    finished_only: bool,
    selection_temperatures: Sequence[float] = (),
) -> dict[str, Any]:
    """metrics.json's content from completions.jsonl's records (`finished_only` is the run's
    `approach.finished_only`: required, since it changes every number). With
    `selection_temperatures`, `soft_best_of_n` holds soft Best-of-N's curves: overall, per
    level and subject, and per problem, each keyed by tau (`soft_key`) then N."""
    ns = budgets(n)
    rng = np.random.default_rng(seed)
    taus = list(selection_temperatures)
    curves = [
        problem_curves(
            outcome_of(r, agg_strategy, finished_only=finished_only), ns, num_subsets, rng, taus
        )
        for r in records
    ]
    problems = [r["problem"] for r in records]
    summary = summarize(problems, curves)
    summary["budgets"] = ns
    summary["per_problem"] = {
        r["uid"]: {m: {str(k): v for k, v in c[m].items()} for m in METHODS}
        for r, c in zip(records, curves)
    }
    if taus:
        keys = {soft_key(t): f"soft:{soft_key(t)}" for t in taus}
        soft = summarize(problems, curves, methods=list(keys.values()))

        def by_tau(block: dict[str, Any]) -> dict[str, Any]:
            return {
                "num_problems": block["num_problems"],
                **{tau: block[key] for tau, key in keys.items()},
            }

        summary["soft_best_of_n"] = {
            "selection_temperatures": taus,
            "overall": by_tau(soft["overall"]),
            "by_level": {k: by_tau(v) for k, v in soft["by_level"].items()},
            "by_subject": {k: by_tau(v) for k, v in soft["by_subject"].items()},
            "per_problem": {
                r["uid"]: {tau: {str(k): v for k, v in c[key].items()} for tau, key in keys.items()}
                for r, c in zip(records, curves)
            },
        }
    return summary


def run_metrics(records: Sequence[dict[str, Any]], cfg: Config) -> dict[str, Any]:
    """metrics.json of a run (searched, re-scored or merged from shards) with `cfg`: every
    setting that changes a number read from the config in this one place, and the PRM's
    aggregation recorded beside them."""
    metrics = metrics_from_records(
        records,
        cfg.n,
        cfg.metrics.num_subsets,
        cfg.metrics.seed,
        finished_only=cfg.approach.finished_only,
        selection_temperatures=cfg.metrics.selection_temperatures,
    )
    metrics["agg_strategy"] = cfg.prm.agg_strategy
    return metrics
