"""Beam search guided by a PRM, batched across problems.

Semantics (search-and-learn's beam search, with its scoring gaps fixed), for budget n and beam
width m, per problem:

- iteration 0 expands the prompt into n candidates; every later iteration refills to n
  candidates by expanding the surviving beams in rank order, each m times while n // m beams
  survive (with fewer survivors the n expansions are dealt out best beam first, as
  search-and-learn does);
- expansion j of a beam expanded c times is sampled at `plan.temperature(j, c, depth)`;
- a candidate that ends (EOS, an empty step, the token budget or the context) joins the
  completed pool; if `filter_duplicates`, unfinished candidates repeating an earlier one's text
  are dropped; the best n // m unfinished candidates by aggregated PRM score (lookahead steps
  included) survive, ties to the earlier candidate;
- the last iteration (`num_iterations`) generates every candidate to the end;
- the result is the n best of the completed pool by `aggregate(step_scores, agg_strategy)`
  (search-and-learn ranks by the last step's score whatever the strategy, or takes the first n
  to complete); ties keep the earlier completion. With `finished_only` (the default) only
  finished (EOS) solutions count, repeated in rank order when fewer than n finished (copies
  carry `extra.copy_of`); truncated ones would otherwise compete, and under `min` a truncated
  solution whose steps all check out outranks one that ends with an uncheckable answer line.
  With none finished, the n best as they are (marked `finished: false`).

Every iteration is one engine call for the candidates of every unfinished problem of the batch
(plus one per lookahead step and per blank retry round, see `steps`) and one PRM call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from hotncold.data import Problem
from hotncold.engine.requests import derive_seed
from hotncold.prm.base import aggregate
from hotncold.search.base import Completion, SearchContext
from hotncold.search.steps import Expansion, Node, StepTask, fill, iteration, ranked

log = logging.getLogger(__name__)


@dataclass
class _Search:
    """One problem's beam search."""

    problem: Problem
    prompt: str
    beams: list[Node] = field(default_factory=lambda: [Node()])
    completed: list[Node] = field(default_factory=list)
    search_tokens: int = 0
    lookahead_tokens: int = 0
    iterations: int = 0

    @property
    def live(self) -> bool:
        return bool(self.beams)


def expansion_counts(n: int, beams: int) -> list[int]:
    """How many of the n candidates each of `beams` ranked beams gets (best first)."""
    return [n // beams + (1 if b < n % beams else 0) for b in range(beams)]


class BeamSearch:
    name = "beam_search"

    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        a = ctx.approach
        keep = ctx.n // a.beam_width
        agg = ctx.agg_strategy
        searches = [_Search(p, prompt) for p, prompt in zip(problems, prompts)]
        for depth in tqdm(
            range(a.num_iterations), desc=f"{self.name} steps", unit="step", leave=False
        ):
            live = [s for s in searches if s.live]
            if not live:
                break
            final = depth == a.num_iterations - 1
            tasks, owners = [], []
            for s in live:
                s.iterations += 1
                for b, (parent, count) in enumerate(
                    zip(s.beams, expansion_counts(ctx.n, len(s.beams)))
                ):
                    for j in range(count):
                        tasks.append(
                            StepTask(
                                prompt=s.prompt,
                                parent=parent,
                                temperature=ctx.plan.temperature(j, count, depth),
                                seed=derive_seed(ctx.seed, s.problem.uid, self.name, depth, b, j),
                                final=final,
                                account=s.problem.uid,
                            )
                        )
                        owners.append(s)
            expansions = iteration(ctx, tasks, [s.problem.problem for s in owners], final)
            by_search: dict[int, list[Expansion]] = {}
            for s, e in zip(owners, expansions):
                s.search_tokens += e.tokens + e.lookahead_tokens
                s.lookahead_tokens += e.lookahead_tokens
                by_search.setdefault(id(s), []).append(e)
            for s in live:
                s.beams = self._prune(s, by_search[id(s)], keep, a.filter_duplicates)
            log.info(
                "beam search step %d: %d candidates, %d problems still searching",
                depth,
                len(tasks),
                sum(s.live for s in searches),
            )
        return [self._result(s, ctx.n, agg, a.finished_only) for s in searches]

    @staticmethod
    def _prune(s: _Search, expansions: list[Expansion], keep: int, dedupe: bool) -> list[Node]:
        active = []
        for e in expansions:
            if e.node.live:
                active.append(e)
            else:
                s.completed.append(e.node)
        if dedupe:
            seen: set[str] = set()
            unique = []
            for e in active:
                if e.node.text not in seen:
                    seen.add(e.node.text)
                    unique.append(e)
            active = unique
        return [e.node for e in ranked(active)[:keep]]

    @staticmethod
    def _result(s: _Search, n: int, agg: str, finished_only: bool) -> list[Completion]:
        # Every iteration ends with n candidates and the last one ends them all, so the pool
        # always holds at least n.
        pool = sorted(s.completed, key=lambda node: -aggregate(node.step_scores, agg))
        extra = {
            "search_tokens": s.search_tokens,
            "lookahead_tokens": s.lookahead_tokens,
            "iterations": s.iterations,
            "pool": len(pool),
        }
        return [
            node.to_completion(group=i, **extra, **more)
            for i, (node, more) in enumerate(fill(pool, n, finished_only))
        ]
