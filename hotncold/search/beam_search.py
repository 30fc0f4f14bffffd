"""Beam search guided by a PRM, batched across problems.

Semantics (search-and-learn's beam search, with its scoring gaps fixed), for budget n and beam
width m, per problem:

- iteration 0 expands the prompt into n candidates; every later iteration refills to n
  candidates by expanding the surviving beams in rank order, each m times while n // m beams
  survive (with fewer survivors the n expansions are dealt out best beam first, as
  search-and-learn does: more samples for the better-scored beams is the search's choice,
  and ties in that rank are in random order, so it favours no slot or temperature);
- the temperatures of an iteration's n candidates come from `plan.deal`: over the n, the
  exact shares of one allocation of n (Best-of-N's rule); per beam, within one of its share;
  the extra samples of an uneven split (m=4 over three values) rotate across beams, depths
  and problems (`plan.rotation`), so no beam, depth or value is systematically favoured;
- a candidate that ends (EOS, an empty step, the token budget or the context) joins the
  completed pool; if `filter_duplicates`, unfinished candidates repeating another one's text
  are dropped (which copy stays is drawn at random: identical text sampled at different
  temperatures); the best n // m unfinished candidates by aggregated PRM score (lookahead
  steps included) survive, ties in random order (`steps.ranked`);
- the last iteration (`num_iterations`) generates every candidate to the end;
- the result is the n best of the completed pool by `aggregate(step_scores, agg_strategy)`
  (search-and-learn ranks by the last step's score whatever the strategy, or takes the first n
  to complete); ties in random order, and a candidate that ended with an empty step (it added
  nothing, so it kept its parent's score) after every other. With `finished_only` (the
  default) only finished (EOS) solutions count, repeated in rank order when fewer than n
  finished (copies carry `extra.copy_of`); truncated ones would otherwise compete, and under
  `min` a truncated solution whose steps all check out outranks one that ends with an
  uncheckable answer line. With none finished, the n best as they are (marked
  `finished: false`; under `finished_only` metrics give them no answer).

Every random choice (ties, which duplicate stays) uses a generator seeded from the run seed,
the problem, the depth and what is ranked, so a run is reproducible.

Each problem's search is a generator of the work it needs (`schedule`): under
`approach.scheduler=barrier` every iteration is one engine call for the candidates of every
unfinished problem of the batch (plus one per lookahead step, blank retry round and answer-stop
round, see `steps`) and one PRM call; under `async` a problem goes on to its next iteration as
soon as its own candidates are scored. The records are the same.
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
    distinct,
    fill,
    iteration_work,
    ranked,
    ranked_nodes,
    tie_breaker,
)

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
    sampled: Counter[float] = field(default_factory=Counter)
    """Candidates sampled at each temperature, pruned ones included."""

    @property
    def live(self) -> bool:
        return bool(self.beams)


def expansion_counts(n: int, beams: int) -> list[int]:
    """How many of the n candidates each of `beams` ranked beams gets (best first).

    Extra expansions go to the better-ranked beams, as in search-and-learn; ranks break ties at
    random, and temperatures are dealt over all n candidates (`plan.deal`), so this favours a
    score, never a slot or a temperature."""
    return [n // beams + (1 if b < n % beams else 0) for b in range(beams)]


class BeamSearch:
    name = "beam_search"

    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        return schedule.run(ctx, [self.search(p, q, ctx) for p, q in zip(problems, prompts)])

    def search(
        self, problem: Problem, prompt: str, ctx: SearchContext
    ) -> schedule.Search[list[Completion]]:
        """One problem's beam search, as the work it yields (`schedule`)."""
        a = ctx.approach
        keep = ctx.n // a.beam_width
        s = _Search(problem, prompt)
        uid = problem.uid
        for depth in range(a.num_iterations):
            if not s.live:
                break
            final = depth == a.num_iterations - 1
            s.iterations += 1
            dealt = ctx.plan.deal(
                expansion_counts(ctx.n, len(s.beams)),
                depth,
                ctx.plan.rotation(ctx.seed, uid, depth),
            )
            tasks = []
            for b, (parent, temperatures) in enumerate(zip(s.beams, dealt)):
                for j, temperature in enumerate(temperatures):
                    tasks.append(
                        StepTask(
                            prompt=prompt,
                            parent=parent,
                            temperature=temperature,
                            seed=derive_seed(ctx.seed, uid, self.name, depth, b, j),
                            final=final,
                            account=uid,
                        )
                    )
                    s.sampled[temperature] += 1
            expansions = yield from iteration_work(
                ctx, tasks, [problem.problem] * len(tasks), final
            )
            for e in expansions:
                s.search_tokens += e.tokens + e.lookahead_tokens
                s.lookahead_tokens += e.lookahead_tokens
            s.beams = self._prune(s, expansions, keep, a.filter_duplicates, (ctx.seed, depth))
            log.debug(
                "beam search %s step %d: %d candidates, %d beams left",
                uid,
                depth,
                len(tasks),
                len(s.beams),
            )
        return self._result(s, ctx.n, ctx.agg_strategy, a.finished_only, ctx.seed)

    def _prune(
        self,
        s: _Search,
        expansions: list[Expansion],
        keep: int,
        dedupe: bool,
        where: tuple[int, int],
    ) -> list[Node]:
        seed, depth = where
        active = []
        for e in expansions:
            if e.node.live:
                active.append(e)
            else:
                s.completed.append(e.node)
        if dedupe:
            active = distinct(active, tie_breaker(seed, s.problem.uid, self.name, depth, "dedupe"))
        order = ranked(active, tie_breaker(seed, s.problem.uid, self.name, depth, "prune"))
        return [e.node for e in order[:keep]]

    def _result(
        self, s: _Search, n: int, agg: str, finished_only: bool, seed: int
    ) -> list[Completion]:
        # Every iteration ends with n candidates and the last one ends them all, so the pool
        # always holds at least n.
        pool = ranked_nodes(s.completed, agg, tie_breaker(seed, s.problem.uid, self.name, "pool"))
        extra = {
            "search_tokens": s.search_tokens,
            "lookahead_tokens": s.lookahead_tokens,
            "iterations": s.iterations,
            "pool": len(pool),
            **sampling_extra(s.sampled, s.iterations),
        }
        return [
            node.to_completion(group=i, **extra, **more)
            for i, (node, more) in enumerate(fill(pool, n, finished_only))
        ]
