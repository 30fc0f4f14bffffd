"""No hidden tilt toward one temperature: ties, blank steps and uneven splits, on a scripted engine.

With a PRM that scores every step alike, which candidates a search keeps is decided by nothing
but its tie-breaking, so the kept candidates' temperatures must follow the mix's shares. A
search that breaks ties by position keeps candidate 0 of a beam, sampled at the first (coldest)
value, every time. The shares are checked with two-sided 99.9% binomial intervals over many
problems at a fixed seed (selection without replacement from an exact mix varies less than a
binomial, so the interval is conservative).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
from fakes import ScriptedEngine

from hotncold.config import ApproachConfig, ModelConfig, TemperatureConfig
from hotncold.data import Problem
from hotncold.engine.requests import Generation
from hotncold.prm.base import PRM, ItemScores
from hotncold.search.base import SearchContext
from hotncold.search.registry import build_approach
from hotncold.search.temperature import TemperaturePlan

NL = "\n"
MULTI = (0.4, 0.8, 1.2)


class FlatPRM(PRM):
    """Every step scores 0.5: every ranking is one big tie."""

    def _score_new(self, items):
        return [ItemScores([0.5] * (len(item.steps) - item.start), 0) for item in items]


class TagPRM(PRM):
    """Scores a step by its `[0.7]` tag (0.5 without one)."""

    def _score_new(self, items):
        out = []
        for item in items:
            found = [re.search(r"\[([0-9.]+)\]", s) for s in item.steps[item.start :]]
            out.append(ItemScores([float(f.group(1)) if f else 0.5 for f in found], 0))
        return out


def tagged_steps(request, i):
    """Every candidate writes a step naming its depth and temperature; nothing depends on the
    request's seed, so whatever differs between runs comes from the search's own choices."""
    depth = request.prompt.count(NL)
    text = f"d{depth} T{request.temperature:g}"
    if not request.stop:
        return Generation(text, 2, "stop")  # the last iteration: the end of the solution
    return Generation(text + NL, 2, "stop", stop_reason=NL)


def distinct_steps(request, i):
    """`tagged_steps` plus the request's seed, so that siblings never write the same text."""
    g = tagged_steps(request, i)
    end = NL if g.text.endswith(NL) else ""
    return Generation(f"{g.text.rstrip(NL)} s{request.seed % 10**6}{end}", 3, "stop", g.stop_reason)


def context(engine, approach, n, m, iterations, seed=0, values=MULTI, prm=None, **fields):
    return SearchContext(
        engine=engine,
        prm=prm or FlatPRM(),
        plan=TemperaturePlan.from_config(TemperatureConfig(values=list(values))),
        model=ModelConfig(max_tokens=1000, step_delimiter=NL),
        approach=ApproachConfig(  # barrier: each iteration's requests read from engine.calls
            name=approach,
            beam_width=m,
            num_iterations=iterations,
            **{"scheduler": "barrier", **fields},
        ),
        n=n,
        seed=seed,
        agg_strategy="min",
    )


def problems(count: int) -> list[Problem]:
    return [Problem(uid=f"q{i}", problem=f"p{i}", answer="1") for i in range(count)]


def solve(ctx, batch):
    prompts = [f"<user>{p.problem}<assistant>" for p in batch]
    return build_approach(ctx.approach.name).solve(batch, prompts, ctx)


def kept_temperatures(engine, depths: int) -> list[Counter]:
    """Per depth d, the temperatures of the candidates kept at d (beam search's survivors,
    DVTS's picks): the parents that the call of depth d + 1 expands, each counted once."""
    out = []
    for d in range(depths):
        parents = {r.prompt for r in engine.calls[d + 1]}
        last_steps = [p.rstrip(NL).rsplit(NL, 1)[-1].rsplit(">", 1)[-1] for p in parents]
        out.append(Counter(float(re.match(r"d\d+ T([0-9.]+) s", s)[1]) for s in last_steps))
    return out


def binomial_interval(trials: int, p: float, level: float = 0.999) -> tuple[int, int]:
    """The central `level` interval of Binomial(trials, p): P(X < lo) and P(X > hi) are each
    at most (1 - level) / 2."""
    tail = (1 - level) / 2
    pmf = [
        math.exp(
            math.lgamma(trials + 1)
            - math.lgamma(c + 1)
            - math.lgamma(trials - c + 1)
            + c * math.log(p)
            + (trials - c) * math.log(1 - p)
        )
        for c in range(trials + 1)
    ]
    below, lo = 0.0, 0
    while below + pmf[lo] <= tail:
        below += pmf[lo]
        lo += 1
    above, hi = 0.0, trials
    while above + pmf[hi] <= tail:
        above += pmf[hi]
        hi -= 1
    return lo, hi


def test_binomial_interval_by_hand():
    # Binomial(10, 0.5): P(X <= 0) = P(X >= 10) = 1/1024 < 0.0025 < P(X <= 1) = 11/1024
    assert binomial_interval(10, 0.5, level=0.995) == (1, 9)
    lo, hi = binomial_interval(300, 1 / 3)
    assert lo < 100 < hi and 100 - lo == pytest.approx(hi - 100, abs=2)


@pytest.mark.parametrize(
    ("approach", "n", "m"),
    [("beam_search", 6, 3), ("beam_search", 8, 4), ("dvts", 6, 3), ("dvts", 8, 4)],
)
def test_kept_candidates_follow_the_mix_when_the_prm_scores_all_alike(approach, n, m):
    """m=3 tries every value once per beam, so only ties decide; m=4 adds the uneven split."""
    engine = ScriptedEngine(distinct_steps)
    depths = 3
    solve(context(engine, approach, n, m, depths + 1), problems(150))
    for depth, kept in enumerate(kept_temperatures(engine, depths)):
        total = sum(kept.values())
        assert total == 150 * (n // m)  # every problem keeps n // m at every depth
        lo, hi = binomial_interval(total, 1 / 3)
        for t in MULTI:
            assert lo <= kept[t] <= hi, (depth, dict(kept))


def run_twice(approach: str, seed: int, **fields):
    engine = ScriptedEngine(tagged_steps)
    out = solve(context(engine, approach, 8, 4, 4, seed=seed, **fields), problems(6))
    return [[(c.text, c.step_temperatures, c.extra) for c in cs] for cs in out]


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
def test_ties_are_reproducible_from_the_seed_and_change_with_it(approach):
    assert run_twice(approach, 0) == run_twice(approach, 0)
    # the script ignores request seeds: only the search's own draws differ
    assert run_twice(approach, 0) != run_twice(approach, 1)


def test_duplicate_filtering_keeps_a_random_copy_of_identical_text():
    """Identical text sampled at different temperatures: which copy survives decides which
    temperature its step is credited to, so it must not always be the first (coldest)."""

    def same_text(request, i):
        if not request.stop:
            return Generation("end", 1, "stop")
        return Generation("same step" + NL, 2, "stop", stop_reason=NL)

    engine = ScriptedEngine(same_text)
    batch = problems(300)
    out = solve(context(engine, "beam_search", 3, 3, 2, filter_duplicates=True), batch)
    # the three candidates of a problem (one per value) write the same step: one survives
    assert [sorted(r.temperature for r in engine.calls[0][i : i + 3]) for i in (0, 3)] == [
        list(MULTI)
    ] * 2
    credited = Counter(cs[0].step_temperatures[0] for cs in out)
    lo, hi = binomial_interval(len(batch), 1 / 3)
    for t in MULTI:
        assert lo <= credited[t] <= hi, dict(credited)


# --------------------------------------------------------------------------- blank steps


def blank_or_answer(request, i):
    """Depth 0: a real first step. Depth 1: at 0.4 only delimiters (a blank candidate, whatever
    the retries), at 0.8 the final answer, scoring below its parent."""
    if request.prompt.count(NL) == 0:
        return Generation("1 + 1 = 2 [0.9]" + NL, 5, "stop", stop_reason=NL)
    if request.temperature == 0.4:
        return Generation(NL, 1, "stop", stop_reason=NL)
    return Generation("The answer is 2. [0.6]", 5, "stop")


@pytest.mark.parametrize("agg", ["min", "prod", "last"])
def test_dvts_never_picks_a_candidate_that_added_nothing(agg):
    engine = ScriptedEngine(blank_or_answer)
    ctx = context(engine, "dvts", 2, 2, 3, values=(0.4, 0.8), prm=TagPRM())
    ctx.agg_strategy = agg
    out = solve(ctx, problems(1))[0]
    # the blank one kept the parent's 0.9 (min, prod, last), the answer scores 0.6 (0.54)
    picked = {c.text for c in out if c.extra["selected"]}
    assert picked == {"1 + 1 = 2 [0.9]\nThe answer is 2. [0.6]"}
    assert all(c.finished for c in out)  # finished_only: the answer fills both slots


@pytest.mark.parametrize("agg", ["min", "prod", "last"])
def test_beam_search_ranks_blank_candidates_after_real_answers(agg):
    engine = ScriptedEngine(blank_or_answer)
    ctx = context(engine, "beam_search", 2, 2, 3, values=(0.4, 0.8), prm=TagPRM())
    ctx.agg_strategy, ctx.approach.finished_only = agg, False
    out = solve(ctx, problems(1))[0]
    assert [c.finish_reason for c in out] == ["eos", "empty_step"]
    assert out[0].text.endswith("The answer is 2. [0.6]")
    assert out[1].finished is False  # a blank ending is not the model ending the solution
    # finished_only (the default) returns only the answer, repeated
    ctx.approach.finished_only = True
    out = solve(ctx, problems(1))[0]
    assert [c.finish_reason for c in out] == ["eos", "eos"] and out[1].extra["copy_of"] == 0


# ------------------------------------------------------------------ uneven splits, per iteration


def counts_per_call(engine, uid_of, values) -> list[dict[str, list[int]]]:
    """For every engine call and problem, how many requests each value got."""
    out = []
    for call in engine.calls:
        per: dict[str, list[int]] = {}
        for r in call:
            per.setdefault(uid_of(r), [0] * len(values))[values.index(r.temperature)] += 1
        out.append(per)
    return out


@pytest.mark.parametrize(
    ("approach", "n", "m", "values"),
    [
        ("beam_search", 8, 4, MULTI),
        ("beam_search", 16, 4, MULTI),
        ("beam_search", 10, 5, MULTI),
        ("beam_search", 12, 3, (0.3, 0.9)),
        ("beam_search", 20, 5, (0.2, 0.6, 1.0, 1.4)),
        ("dvts", 8, 4, MULTI),
        ("dvts", 20, 5, MULTI),
        ("dvts", 12, 6, (0.2, 0.6, 1.0, 1.4)),
    ],
)
def test_every_iteration_splits_exactly_and_rotates_the_extra_samples(approach, n, m, values):
    """Per problem and iteration: each value's count within one of its share of the
    iteration's n candidates (and of each parent's m); over k consecutive depths the counts
    are exactly equal, overall and for every beam, so no value, depth or beam is favoured."""
    k = len(values)
    engine = ScriptedEngine(tagged_steps)
    batch = problems(5)
    out = solve(context(engine, approach, n, m, 2 * k, values=values), batch)

    def uid_of(r):
        return r.prompt.split("<assistant>")[0].removeprefix("<user>")

    calls = counts_per_call(engine, uid_of, list(values))
    assert len(calls) == 2 * k
    for per in calls:
        assert len(per) == len(batch)
        for counts in per.values():
            assert sum(counts) == n
            assert all(abs(c - n / k) < 1 for c in counts), counts
    for window in (calls[:k], calls[k:]):
        for p in batch:
            assert [sum(per[p.problem][v] for per in window) for v in range(k)] == [n] * k
    # every parent's m expansions: within one of m / k
    for call in engine.calls:
        parents = Counter((r.prompt, r.temperature) for r in call)
        for prompt in {r.prompt for r in call}:
            got = [parents[prompt, t] for t in values]
            # beams that share a text are one prompt here: compare per beam's multiple
            beams = sum(got) // m
            assert all(abs(c - beams * m / k) < beams for c in got), got
    # the search records what it sampled, per problem
    for cs in out:
        sampled = cs[0].extra["sampled_temperatures"]
        assert sampled == {f"{t:g}": 2 * n for t in values}
