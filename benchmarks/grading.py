"""Clustering a hot run's answers: 256 distinct answers to one problem, many of them equivalent.

A hot sample at n=256 writes many distinct answers. The grader must still merge the equivalent
ones (`1/2`, `0.5`, `\\frac{1}{2}`) for majority and weighted voting, in bounded time. This
benchmark clusters a fixed mix of 256 distinct answers (exact numbers in several forms, decimals,
expressions, intervals and stray text) with `Grader.cluster` and with the exhaustive reference
(every pair checked with math-verify in both directions, then the transitive closure), and
reports both times and whether the two partitions agree.
"""

from __future__ import annotations

import random
import time

from hotncold.evaluation.grading import Grader


def answers(seed: int = 0) -> list[str]:
    """256 distinct answer strings: 48 values written 3 ways, then singletons of other kinds."""
    rng = random.Random(seed)
    out: list[str] = []
    for k in rng.sample(range(1, 400), 48):
        out += [str(k), f"{k}.0", f"\\frac{{{2 * k}}}{{2}}"]
    out += [f"\\frac{{{k}}}{{7}}" for k in range(1, 21)]
    out += [f"{rng.uniform(0, 50):.4f}" for _ in range(30)]
    out += [f"{k}\\sqrt{{{p}}}" for k, p in zip(range(2, 12), (2, 3, 5, 6, 7, 10, 11, 13, 14, 15))]
    out += [f"x^{{{k}}}+{k}" for k in range(2, 12)]
    out += [f"({k},{k + 3})" for k in range(10)]
    out += ["no answer", "ABC", "\\text{(C)}", "\\pi", "\\frac{\\pi}{2}", "2\\pi", "e", "-1"]
    out += [str(-k) for k in range(2, 200)][: 256 - len(out)]
    assert len(set(out)) == 256, len(set(out))
    return out


def exhaustive(items: list[str]) -> list[int]:
    """Reference: every pair compared (both directions), then connected components."""
    grader = Grader()
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        for j in range(i):
            if find(i) != find(j) and (
                grader._verify(items[i], items[j]) or grader._verify(items[j], items[i])
            ):
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(items))]


def partition(labels: list[int]) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for i, c in enumerate(labels):
        groups.setdefault(c, set()).add(i)
    return {frozenset(g) for g in groups.values()}


def main() -> dict:
    items = answers()
    started = time.perf_counter()
    clusters = Grader().cluster(items)
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    reference = exhaustive(items)
    slow_s = time.perf_counter() - started
    result = {
        "distinct_answers": len(items),
        "clusters": len(set(clusters)),
        "reference_clusters": len(set(reference)),
        "same_partition": partition(clusters) == partition(reference),
        "cluster_s": round(fast_s, 2),
        "exhaustive_s": round(slow_s, 2),
        "speedup": round(slow_s / fast_s, 1),
    }
    print(
        f"grading: {len(items)} distinct answers -> {result['clusters']} clusters in "
        f"{fast_s:.2f} s (exhaustive pairwise: {slow_s:.2f} s, {result['speedup']}x; "
        f"same partition: {result['same_partition']})"
    )
    return result
