"""Diverse verifier tree search (DVTS) guided by a PRM, batched across problems.

Semantics (search-and-learn's DVTS, with its gaps fixed), for budget n and beam width m, per
problem: n // m independent subtrees. At every iteration each live subtree expands its current
node into m candidates, the PRM scores them and the subtree greedily continues from the best by
aggregated score (lookahead steps included; ties in random order, and a candidate that ended
with an empty step, having added nothing, after every other: `steps.ranked`). A subtree ends
when that best candidate ends (EOS, an empty step, the token budget or the context); the last
iteration generates every candidate to the end.

Temperatures: at each depth the n // m subtrees' m expansions are dealt together
(`plan.deal([m] * (n // m), depth, plan.rotation(...))`): over all n candidates, the exact
shares of one allocation of n; per subtree, within one of its share of m; the extra samples of
an uneven split (m=4 over three values) rotate across subtrees, depths and problems. Subtree t
always takes row t of that deal, whether or not the others are still growing, so a subtree's
samples never depend on its siblings (once some have ended, the live ones' shares are exact
per subtree, within one, rather than over the iteration).

Output: m completions per subtree, from its last expansion (ranked), sharing the subtree's
`group` so that metrics' subsets for N < n take whole subtrees (a subset of whole subtrees is a
DVTS run with fewer subtrees). With `finished_only` (the default) a subtree's m slots hold the
finished (EOS) candidates of that expansion, best first, repeated in turn (`extra.copy_of` names
the original's index) so every subtree keeps m slots and equal weight in votes; unfinished
siblings, which stopped one step after their parent and carry no answer, are dropped
(`extra.dropped_unfinished` counts them). A subtree without any finished candidate keeps its m
unfinished ones, marked `finished: false` (under `finished_only` metrics give them no answer).
search-and-learn returns the last expansion as it is
(`finished_only=false`).

Each problem's search is a generator of the work it needs (`schedule`): under
`approach.scheduler=barrier` every iteration is one engine call for the candidates of every live
subtree of every problem of the batch (plus one per lookahead step, blank retry round and
answer-stop round, see `steps`) and one PRM call; under `async` a problem goes on to its next
iteration as soon as its own candidates are scored. The records are the same.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from hotncold.data import Problem
from hotncold.engine.requests import derive_seed
from hotncold.search import schedule
from hotncold.search.base import Completion, SearchContext, sampling_extra
from hotncold.search.steps import (
    Expansion,
    Node,
    StepTask,
    fill,
    iteration_work,
    ranked,
    tie_breaker,
)

log = logging.getLogger(__name__)


@dataclass
class _Subtree:
    index: int
    node: Node = field(default_factory=Node)
    last: list[Expansion] = field(default_factory=list)
    """Its last expansion, best first."""
    tokens: int = 0
    """Tokens generated for it: every candidate, lookahead included."""

    @property
    def live(self) -> bool:
        return self.node.live


@dataclass
class _Search:
    problem: Problem
    prompt: str
    subtrees: list[_Subtree]
    lookahead_tokens: int = 0
    iterations: int = 0
    sampled: Counter[float] = field(default_factory=Counter)
    """Candidates sampled at each temperature."""
    expansions: int = 0
    """Subtree expansions (allocations of m samples)."""


class DVTS:
    name = "dvts"

    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        return schedule.run(ctx, [self.search(p, q, ctx) for p, q in zip(problems, prompts)])

    def search(
        self, problem: Problem, prompt: str, ctx: SearchContext
    ) -> schedule.Search[list[Completion]]:
        """One problem's DVTS, as the work it yields (`schedule`)."""
        a = ctx.approach
        m = a.beam_width
        s = _Search(problem, prompt, [_Subtree(t) for t in range(ctx.n // m)])
        uid = problem.uid
        for depth in range(a.num_iterations):
            final = depth == a.num_iterations - 1
            live = [t for t in s.subtrees if t.live]
            if not live:
                break
            s.iterations += 1
            rows = ctx.plan.deal(
                [m] * len(s.subtrees), depth, ctx.plan.rotation(ctx.seed, uid, depth)
            )
            tasks, owners = [], []
            for t in live:
                s.expansions += 1
                for j, temperature in enumerate(rows[t.index]):
                    tasks.append(
                        StepTask(
                            prompt=prompt,
                            parent=t.node,
                            temperature=temperature,
                            seed=derive_seed(ctx.seed, uid, self.name, depth, t.index, j),
                            final=final,
                            account=uid,
                        )
                    )
                    owners.append(t)
                    s.sampled[temperature] += 1
            expansions = yield from iteration_work(
                ctx, tasks, [problem.problem] * len(tasks), final
            )
            grown: dict[int, tuple[_Subtree, list[Expansion]]] = {}
            for t, e in zip(owners, expansions):
                t.tokens += e.tokens + e.lookahead_tokens
                s.lookahead_tokens += e.lookahead_tokens
                grown.setdefault(id(t), (t, []))[1].append(e)
            for t, candidates in grown.values():
                rng = tie_breaker(ctx.seed, uid, self.name, depth, t.index, "pick")
                t.last = ranked(candidates, rng)
                t.node = t.last[0].node
            log.debug(
                "dvts %s step %d: %d candidates, %d subtrees still growing",
                uid,
                depth,
                len(tasks),
                sum(t.live for t in s.subtrees),
            )
        return self._result(s, m, a.finished_only)

    @staticmethod
    def _result(s: _Search, m: int, finished_only: bool) -> list[Completion]:
        out: list[Completion] = []
        search_tokens = sum(t.tokens for t in s.subtrees)
        for t in s.subtrees:
            extra = {
                "subtree": t.index,
                "subtree_tokens": t.tokens,
                "search_tokens": search_tokens,
                "lookahead_tokens": s.lookahead_tokens,
                "iterations": s.iterations,
                **sampling_extra(s.sampled, s.expansions),
            }
            first = len(out)
            for node, more in fill([e.node for e in t.last], m, finished_only):
                if "copy_of" in more:
                    more["copy_of"] += first
                more["selected"] = node is t.node
                out.append(node.to_completion(group=t.index, **extra, **more))
        return out
