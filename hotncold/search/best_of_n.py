"""Best-of-N: sample n full solutions per problem, then let the PRM score every step."""

from __future__ import annotations

from collections.abc import Sequence

from hotncold.data import Problem
from hotncold.engine.requests import Generation, GenerationRequest, derive_seed
from hotncold.prm.base import split_steps
from hotncold.search.base import Completion, SearchContext


class BestOfN:
    """All n samples of all problems go to the engine in one call.

    A multi-temperature budget becomes one request per (problem, temperature) with that
    temperature's exact share as `n`, so prefix caching reuses each prompt across samples; the
    samples are then laid out in the plan's interleaved order. Greedy (T=0) samples are all
    identical, so one is generated and repeated.
    """

    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        counts = ctx.plan.counts(ctx.n)
        requests = []
        for problem, prompt in zip(problems, prompts):
            for value, count in zip(ctx.plan.values, counts):
                if count == 0:
                    continue
                requests.append(
                    GenerationRequest(
                        prompt=prompt,
                        temperature=value,
                        max_tokens=ctx.model.max_tokens,
                        n=1 if value == 0 else count,
                        top_p=ctx.model.top_p,
                        seed=derive_seed(ctx.seed, problem.uid, "best_of_n", value),
                        account=problem.uid,
                    )
                )
        outputs = iter(ctx.engine.generate(requests))
        order = ctx.plan.for_slots(ctx.n)
        per_problem: list[list[tuple[float, Generation]]] = []
        for _ in problems:
            pools = {}
            for value, count in zip(ctx.plan.values, counts):
                if count:
                    samples = next(outputs)
                    pools[value] = samples * count if value == 0 else list(samples)
            per_problem.append([(value, pools[value].pop(0)) for value in order])

        completions = [
            [
                _completion(g, value, ctx.model.step_delimiter, slot)
                for slot, (value, g) in enumerate(samples)
            ]
            for samples in per_problem
        ]
        pairs = [(p.problem, c.steps) for p, cs in zip(problems, completions) for c in cs]
        scores = iter(ctx.prm.score(pairs))
        for cs in completions:
            for c in cs:
                c.step_scores = next(scores)
        return completions


def _completion(
    generation: Generation, temperature: float, delimiter: str, slot: int
) -> Completion:
    steps = split_steps(generation.text, delimiter)
    return Completion(
        text=generation.text,
        steps=steps,
        step_scores=[],
        step_temperatures=[temperature] * len(steps),
        num_tokens=generation.num_tokens,
        finish_reason="eos" if generation.ended else "length",
        temperature=temperature,
        group=slot,  # independent samples: each is its own unit for subset sampling
    )
