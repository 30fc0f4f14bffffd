"""The PRM interface and the prefix cache that makes step-by-step search score incrementally.

A PRM scores a batch of (problem, steps) pairs and returns one score in [0, 1] per step. The
score of step i may depend on the problem and steps 0..i, never on later steps, so scores are
cached by a digest of the prefix: a beam that grew by one step costs one new step's scoring.
Subclasses implement `_score_new`, which receives each pair with the index of its first
unscored step and returns, for each, an `ItemScores`: the scores of the remaining steps only and
the model tokens computing them took (what run.json's `prm_tokens` adds up).
"""

from __future__ import annotations

import hashlib
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PendingScore:
    """A pair to score from `start` on; steps before `start` are already scored."""

    problem: str
    steps: tuple[str, ...]
    start: int


@dataclass
class ItemScores:
    """What scoring one `PendingScore` produced."""

    scores: list[float]
    """Scores of `steps[start:]`, one per new step."""
    tokens: int
    """Model tokens the PRM processed for it (0 for model-free verifiers: say so explicitly)."""


@dataclass
class PRMCharge:
    """What the PRM computed for one problem (see `PRMStats.accounts`)."""

    tokens: int = 0
    """Model tokens processed, as `ItemScores.tokens` counts them."""
    steps: int = 0
    """Steps scored (cache misses)."""


@dataclass
class PRMStats:
    calls: int = 0
    """Calls to `score`."""
    steps_scored: int = 0
    """Steps actually computed (cache misses)."""
    steps_cached: int = 0
    """Steps answered from the prefix cache."""
    tokens: int = 0
    """Model tokens the PRM processed (0 for model-free verifiers)."""
    seconds: float = 0.0
    """Wall time spent in `score`."""
    accounts: dict[str, PRMCharge] = field(default_factory=dict)
    """What was computed per problem text since it was last taken (`take`)."""
    keep_accounts: bool = True
    """Keep `accounts` (a PRM server, which never takes them, turns it off)."""

    def charge(self, problem: str, tokens: int, steps: int) -> None:
        self.steps_scored += steps
        self.tokens += tokens
        if self.keep_accounts:
            charge = self.accounts.setdefault(problem, PRMCharge())
            charge.tokens += tokens
            charge.steps += steps

    def take(self, problem: str) -> PRMCharge:
        """What scoring `problem`'s steps computed since the last call (and forget it)."""
        return self.accounts.pop(problem, None) or PRMCharge()


class PRM(ABC):
    """Scores reasoning steps. `score` is the whole public interface."""

    name: str = "prm"
    reads_step_delimiter: bool = False
    """Its input depends on the generator's `model.step_delimiter` (Skywork reads the text the
    generator wrote, line by line): a PRM server must then serve the run's own generator."""

    def __init__(self, batch_size: int = 256, incremental: bool = True) -> None:
        self.batch_size = batch_size
        self.incremental = incremental
        self.stats = PRMStats()
        self._cache: dict[str, dict[bytes, float]] = {}
        """Scores of known step prefixes, per problem text (`forget`)."""

    def score(self, batch: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        """One score per step for each (problem, steps) pair."""
        started = time.perf_counter()
        try:
            return self._score(batch)
        finally:
            self.stats.calls += 1
            self.stats.seconds += time.perf_counter() - started

    def _score(self, batch: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        if not self.incremental:
            self._forget_prefixes()
        results: list[list[float]] = []
        todo: dict[tuple[str, tuple[str, ...]], tuple[int, list[bytes]]] = {}
        waiting: list[tuple[int, tuple[str, tuple[str, ...]]]] = []
        for index, (problem, steps) in enumerate(batch):
            steps = tuple(steps)
            digests = prefix_digests(problem, steps)
            cache = self._cache.get(problem, {})
            known: list[float] = []
            for digest in digests if self.incremental else ():
                if digest not in cache:
                    break
                known.append(cache[digest])
            self.stats.steps_cached += len(known)
            results.append(known)
            if len(known) < len(steps):
                key = (problem, steps)
                todo.setdefault(key, (len(known), digests))  # identical pairs are scored once
                waiting.append((index, key))
        items = list(todo.items())
        pending = [PendingScore(problem, steps, start) for (problem, steps), (start, _) in items]
        for ((problem, _), (start, digests)), result in zip(items, self.compute(pending)):
            cache = self._cache.setdefault(problem, {})
            for digest, value in zip(digests[start:], result.scores):
                cache[digest] = float(value)
        for index, (problem, steps) in waiting:
            start = len(results[index])
            digests = prefix_digests(problem, steps)
            cache = self._cache[problem]
            results[index] = results[index] + [cache[d] for d in digests[start:]]
        return results

    def compute(self, pending: Sequence[PendingScore]) -> list[ItemScores]:
        """Scores of `steps[start:]` and the model tokens processed, for each item, bypassing
        the score cache (the PRM server calls this with the starts its clients send)."""
        out: list[ItemScores] = []
        for chunk_start in range(0, len(pending), self.batch_size):
            chunk = pending[chunk_start : chunk_start + self.batch_size]
            results = self._score_new(chunk)
            if len(results) != len(chunk):
                raise RuntimeError(
                    f"{type(self).__name__} returned {len(results)} results for {len(chunk)} items"
                )
            for item, result in zip(chunk, results):
                if len(result.scores) != len(item.steps) - item.start:
                    raise RuntimeError(
                        f"{type(self).__name__} returned {len(result.scores)} scores for "
                        f"{len(item.steps) - item.start} new steps"
                    )
                self.stats.charge(item.problem, int(result.tokens), len(result.scores))
                out.append(ItemScores([float(v) for v in result.scores], int(result.tokens)))
        return out

    def reset(self) -> None:
        """Forget every cached score."""
        self._cache.clear()

    def forget(self, problem: str) -> None:
        """Forget the cached scores of `problem`'s steps (its search ended: bounds memory)."""
        self._cache.pop(problem, None)

    def _forget_prefixes(self) -> None:  # noqa: B027  (optional hook; model-free PRMs skip it)
        """Non-incremental mode: drop whatever lets a model skip re-reading known prefixes."""

    @abstractmethod
    def _score_new(self, items: Sequence[PendingScore]) -> list[ItemScores]:
        """For each item, the scores of `steps[start:]` and the model tokens they took."""


def prefix_digests(problem: str, steps: Sequence[str]) -> list[bytes]:
    """Digest of (problem, steps[:i+1]) for every i, chained so each costs one step's hashing."""
    digest = hashlib.blake2b(problem.encode(), digest_size=16).digest()
    out = []
    for step in steps:
        digest = hashlib.blake2b(digest + b"\x1f" + step.encode(), digest_size=16).digest()
        out.append(digest)
    return out


AGG_STRATEGIES = ("last", "min", "prod", "mean")
"""How step scores become one solution score (`prm.agg_strategy`; see `aggregate`)."""


def aggregate(scores: Sequence[float], strategy: str) -> float:
    """One solution score from its step scores; a solution without steps scores 0."""
    if not scores:
        return 0.0
    if strategy == "last":
        return float(scores[-1])
    if strategy == "min":
        return float(min(scores))
    if strategy == "prod":
        return float(math.prod(scores))
    if strategy == "mean":
        return float(sum(scores) / len(scores))
    raise ValueError(f"unknown aggregation {strategy!r}")


def split_steps(text: str, delimiter: str) -> list[str]:
    """The non-empty steps of a completion, stripped of surrounding whitespace."""
    return [step.strip() for step in text.split(delimiter) if step.strip()]
