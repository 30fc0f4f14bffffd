"""Particle filtering guided by a PRM, with tempered resampling, batched across problems.

Semantics (its_hub's `ParticleFiltering`, Red-Hat-AI-Innovation-Team/its_hub
algorithms/particle_gibbs.py, with both temperatures as settings), for budget n, per problem:

- n particles start from the prompt. At every step (depth) each particle still growing
  generates one step (the last of `num_iterations` steps generates to the end); the PRM scores
  it and the particle's score is its aggregated step scores (`prm.agg_strategy`, lookahead steps
  included as the searches rank them). Weights are not cumulative: a particle's weight is
  computed from its latest aggregated score only, as in its_hub.
- Then all n particles are resampled, every step, with replacement: weights proportional to
  exp(signal / tau_d) (`approach.resampling`: the logit of the score, its_hub's, or the score;
  tau_d = tau times the schedule's factor at step d), drawn by multinomial sampling (its_hub's,
  the default) or systematic sampling (lower variance). A resampled particle is a copy: copies
  of a growing particle grow apart from the next step on (each sample has its own seed).
- Finished particles stay in the pool: a particle that ended (EOS) stops growing and takes
  part in every later resampling with its final weight, so a good finished solution
  multiplies (its_hub keeps stopped particles the same way). A particle that stopped without
  an answer (truncated, or an empty step: see `steps`) stops growing too; under
  `finished_only` (the default) its weight is zero, since copying it would spend slots on a
  solution that never votes; with `finished_only=false` it keeps its score's weight. A problem
  whose particles all have zero weight is not resampled.
- The search ends when every particle has stopped (the last step ends them all). The output
  is the n particles of the last resampling, in index order (copies adjacent; `extra.copy_of`
  names the first slot with the same solution), so votes and PRM-weighted picks over them
  read the filter's final distribution; metrics' `naive` picks the best-scored particle,
  its_hub's ARGMAX selection.

Temperatures: at each step the n particle slots take `plan.deal([n], depth, rotation)` (the
`temperature` group's values in their shares, times its schedule's factor at the step): slot i
samples at the i-th of those whichever particle it holds. Slots of stopped particles generate
nothing, so a step's shares are exact over the n slots, not over the growing ones.

Every step is one engine call for the particles of every problem of the batch (plus one per
lookahead step and per blank retry round, see `steps`) and one PRM call: `steps.iteration`.
Resampling draws from a generator seeded from the run seed, the problem and the step, so a run
is reproducible. Records: each completion's `extra.resampling` lists, per step, tau, the
effective sample size 1 / sum(w^2) before resampling and how many distinct particles survived.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tqdm import tqdm

from hotncold.config import ParticleFilterConfig, ResamplingConfig
from hotncold.data import Problem
from hotncold.engine.requests import derive_seed
from hotncold.search.base import Completion, SearchContext, sampling_extra
from hotncold.search.resampling import effective_size, resample, weights
from hotncold.search.steps import Node, StepTask, iteration
from hotncold.search.temperature import TemperaturePlan

log = logging.getLogger(__name__)


def tau_plan(r: ResamplingConfig) -> TemperaturePlan:
    """The resampling temperature over the steps, as a one-value schedule: tau x factor(d)."""
    return TemperaturePlan(
        values=(float(r.tau),),
        ratios=(1.0,),
        schedule=r.schedule,
        start=float(r.start),
        end=float(r.end),
        horizon=int(r.horizon),
        switch_at=int(r.switch_at),
    )


@dataclass
class _Filter:
    """One problem's particles."""

    problem: Problem
    prompt: str
    particles: list[Node]
    scores: list[float]
    """Each particle's latest aggregated PRM score (what its weight is computed from)."""
    search_tokens: int = 0
    lookahead_tokens: int = 0
    iterations: int = 0
    sampled: Counter[float] = field(default_factory=Counter)
    history: list[dict[str, float]] = field(default_factory=list)
    """Per step: tau, the effective sample size before resampling, distinct survivors."""

    @property
    def live(self) -> bool:
        return any(p.live for p in self.particles)


def particle_weights(
    scores: Sequence[float],
    particles: Sequence[Node],
    tau: float,
    r: ResamplingConfig,
    finished_only: bool,
) -> list[float]:
    """The resampling weights of one problem's particles (zero for a particle that stopped
    without an answer under `finished_only`); all zero when no particle may be copied."""
    usable = [p.live or p.finished or not finished_only for p in particles]
    if not any(usable):
        return [0.0] * len(particles)
    ws = iter(weights([s for s, u in zip(scores, usable) if u], tau, r.signal))
    return [next(ws) if u else 0.0 for u in usable]


class ParticleFilter:
    name = "particle_filter"

    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        a = ctx.approach
        r = a.resampling if isinstance(a, ParticleFilterConfig) else ResamplingConfig()
        taus = tau_plan(r)
        filters = [
            _Filter(p, prompt, [Node()] * ctx.n, [0.0] * ctx.n)
            for p, prompt in zip(problems, prompts)
        ]
        for depth in tqdm(
            range(a.num_iterations), desc=f"{self.name} steps", unit="step", leave=False
        ):
            final = depth == a.num_iterations - 1
            tasks, owners = [], []
            for f in filters:
                if not f.live:
                    continue
                f.iterations += 1
                uid = f.problem.uid
                (temperatures,) = ctx.plan.deal(
                    [ctx.n], depth, ctx.plan.rotation(ctx.seed, uid, depth)
                )
                for i, (particle, temperature) in enumerate(zip(f.particles, temperatures)):
                    if not particle.live:
                        continue
                    tasks.append(
                        StepTask(
                            prompt=f.prompt,
                            parent=particle,
                            temperature=temperature,
                            seed=derive_seed(ctx.seed, uid, self.name, depth, i),
                            final=final,
                            account=uid,
                        )
                    )
                    owners.append((f, i))
                    f.sampled[temperature] += 1
            if not tasks:
                break
            expansions = iteration(ctx, tasks, [f.problem.problem for f, _ in owners], final)
            grown: dict[int, _Filter] = {}
            for (f, i), e in zip(owners, expansions):
                f.particles[i] = e.node
                f.scores[i] = e.selection_score
                f.search_tokens += e.tokens + e.lookahead_tokens
                f.lookahead_tokens += e.lookahead_tokens
                grown[id(f)] = f
            tau = taus.values[0] * taus.factor(depth)
            for f in grown.values():
                self._resample(f, tau, r, a.finished_only, (ctx.seed, depth))
            log.info(
                "particle filter step %d: %d particles grown, %d problems still growing",
                depth,
                len(tasks),
                sum(f.live for f in filters),
            )
        return [self._result(f) for f in filters]

    def _resample(
        self,
        f: _Filter,
        tau: float,
        r: ResamplingConfig,
        finished_only: bool,
        where: tuple[int, int],
    ) -> None:
        seed, depth = where
        ws = particle_weights(f.scores, f.particles, tau, r, finished_only)
        step = {"depth": depth, "tau": round(tau, 6)}
        if sum(ws) <= 0:  # nothing may be copied: the particles stay as they are
            f.history.append({**step, "ess": 0.0, "survivors": len(f.particles)})
            return
        rng = random.Random(derive_seed(seed, f.problem.uid, self.name, depth, "resample"))
        chosen = resample(ws, len(f.particles), r.scheme, rng)
        f.history.append(
            {**step, "ess": round(effective_size(ws), 6), "survivors": len(set(chosen))}
        )
        f.particles = [f.particles[i] for i in chosen]
        f.scores = [f.scores[i] for i in chosen]

    @staticmethod
    def _result(f: _Filter) -> list[Completion]:
        extra = {
            "search_tokens": f.search_tokens,
            "lookahead_tokens": f.lookahead_tokens,
            "iterations": f.iterations,
            "resampling": f.history,
            "distinct_particles": len({p.text for p in f.particles}),
            **sampling_extra(f.sampled, f.iterations),
        }
        out: list[Completion] = []
        first: dict[str, int] = {}
        for i, p in enumerate(f.particles):
            more = {"particle": i}
            if p.text in first:
                more["copy_of"] = first[p.text]
            else:
                first[p.text] = i
            out.append(p.to_completion(group=i, **extra, **more))
        return out
