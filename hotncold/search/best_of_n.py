"""Best-of-N: sample n full solutions per problem, then let the PRM score every step.

`approach.finished_only` applies at metrics time here (`hotncold.evaluation.metrics`): the n
completions are independent samples, so a truncated one stays in its slot (it cost its tokens
and is part of every subset it falls in) but has no answer: it never votes and naive selection
never picks it. Repeating finished samples in its place, as the searches do with their
candidates, would change what a subset of N independent samples is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from hotncold.data import Problem
from hotncold.engine import answer_stop
from hotncold.engine.requests import Generation, GenerationRequest, derive_seed
from hotncold.prm.base import split_steps
from hotncold.search.base import Completion, SearchContext, sampling_extra


def whole_solutions(
    ctx: SearchContext, problem: Problem, prompt: str, temperature: float, count: int, seed: int
) -> GenerationRequest:
    """One request for `count` whole solutions of `problem` at `temperature` (one sample when
    greedy: they would all be the same; `greedy_repeated` lays it out `count` times)."""
    return GenerationRequest(
        prompt=prompt,
        temperature=temperature,
        max_tokens=ctx.model.max_tokens,
        n=1 if temperature == 0 else count,
        top_p=ctx.model.top_p,
        seed=seed,
        logprobs=ctx.logprobs,
        account=problem.uid,
        answer_stop=ctx.approach.answer_stop,
    )


def greedy_repeated(samples: list[Generation], temperature: float, count: int) -> list[Generation]:
    """What `whole_solutions` returned, as `count` samples (a greedy sample repeated)."""
    return samples * count if temperature == 0 else list(samples)


class BestOfN:
    """All n samples of all problems go to the engine in one call.

    A multi-temperature budget becomes one request per (problem, temperature) with that
    temperature's exact share as `n`, so prefix caching reuses each prompt across samples; the
    samples are then laid out in the plan's interleaved order. When n does not split exactly
    (n=8 over three values), which values get the extra samples rotates from problem to
    problem (`plan.rotation`), so over a run no value is short; metrics read random subsets,
    never the first slots, so the layout favours no value either. Greedy (T=0) samples are all
    identical, so one is generated and repeated.
    """

    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        firsts = [ctx.plan.rotation(ctx.seed, p.uid) for p in problems]
        requests = []
        for problem, prompt, first in zip(problems, prompts, firsts):
            for value, count in zip(ctx.plan.values, ctx.plan.counts(ctx.n, first)):
                if count == 0:
                    continue
                seed = derive_seed(ctx.seed, problem.uid, "best_of_n", value)
                requests.append(whole_solutions(ctx, problem, prompt, value, count, seed))
        outputs = iter(answer_stop.generate(ctx.engine, requests))
        per_problem: list[list[tuple[float, Generation]]] = []
        for first in firsts:
            pools = {}
            for value, count in zip(ctx.plan.values, ctx.plan.counts(ctx.n, first)):
                if count:
                    pools[value] = greedy_repeated(next(outputs), value, count)
            order = ctx.plan.for_slots(ctx.n, first)
            per_problem.append([(value, pools[value].pop(0)) for value in order])

        completions = []
        for samples in per_problem:
            extra = sampling_extra(Counter(value for value, _ in samples), 1)
            completions.append(
                [
                    sample_completion(g, value, ctx.model.step_delimiter, slot, extra)
                    for slot, (value, g) in enumerate(samples)
                ]
            )
        pairs = [(p.problem, c.steps) for p, cs in zip(problems, completions) for c in cs]
        scores = iter(ctx.prm.score(pairs))
        for cs in completions:
            for c in cs:
                c.step_scores = next(scores)
        return completions


def sample_completion(
    generation: Generation, temperature: float, delimiter: str, slot: int, extra: dict
) -> Completion:
    """A whole sampled solution as a completion (its steps split for the PRM, unscored)."""
    steps = split_steps(generation.text, delimiter)
    return Completion(
        text=generation.text,
        steps=steps,
        step_scores=[],
        step_temperatures=[temperature] * len(steps),
        num_tokens=generation.num_tokens,
        finish_reason=_finish(generation),
        temperature=temperature,
        group=slot,  # independent samples: each is its own unit for subset sampling
        extra=dict(extra),
        token_logprobs=generation.token_logprobs,
        token_ends=generation.token_ends,
    )


def _finish(generation: Generation) -> str:
    if generation.ended:
        return "eos"
    return "answer" if generation.finish_reason == "answer" else "length"
