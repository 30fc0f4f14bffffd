"""Particle filtering's semantics on a scripted engine and a scripted PRM, and its resampling.

Every request's seed is `derive_seed(run seed, uid, "particle_filter", depth, slot)`, so the
script knows which particle slot it answers and each test states what every particle writes and
how the PRM scores it (a `[0.7]` tag, as in test_search.py).
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from fakes import ScriptedEngine
from test_search import NL, SEED, TagPRM, cut, eos, step, written

from hotncold.config import (
    ConfigError,
    ModelConfig,
    ParticleFilterConfig,
    ResamplingConfig,
    TemperatureConfig,
)
from hotncold.data import Problem
from hotncold.engine.requests import derive_seed
from hotncold.search.base import SearchContext
from hotncold.search.particle_filter import ParticleFilter, tau_plan
from hotncold.search.registry import build_approach, check_approach
from hotncold.search.resampling import effective_size, resample, signal_of, weights
from hotncold.search.temperature import TemperaturePlan

PROBLEMS = [Problem(uid=f"u{i}", problem=f"p{i}", answer="1") for i in range(2)]


class Slots:
    """Which (uid, depth, slot) a request's seed stands for."""

    def __init__(self, uids, depths=8, slots=32) -> None:
        self.table = {
            derive_seed(SEED, uid, "particle_filter", d, i): (uid, d, i)
            for uid in uids
            for d in range(depths)
            for i in range(slots)
        }

    def __call__(self, request) -> tuple[str, int, int]:
        return self.table[request.seed]


def context(engine, n=8, iterations=3, values=(0.8,), agg="last", temperature=None, **resampling):
    return SearchContext(
        engine=engine,
        prm=TagPRM(),
        plan=TemperaturePlan.from_config(
            TemperatureConfig(values=list(values), **(temperature or {}))
        ),
        model=ModelConfig(max_tokens=100, step_delimiter=NL),
        approach=ParticleFilterConfig(
            num_iterations=iterations, resampling=ResamplingConfig(**resampling)
        ),
        n=n,
        seed=SEED,
        agg_strategy=agg,
    )


def solve(engine, ctx, problems=PROBLEMS[:1]):
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in problems]
    return build_approach("particle_filter").solve(problems, prompts, ctx)


# ------------------------------------------------------------------------------- resampling


def test_logit_weights_at_tau_one_are_the_odds_of_the_scores():
    scores = [0.9, 0.5, 0.2, 0.75]
    odds = [s / (1 - s) for s in scores]
    assert weights(scores, 1.0) == pytest.approx([o / sum(odds) for o in odds])
    # tau divides the exponent: tau = 0.5 squares the odds
    assert weights(scores, 0.5) == pytest.approx([o**2 / sum(x**2 for x in odds) for o in odds])
    # the raw score: REBASE's softmax
    raw = [math.exp(s / 0.2) for s in scores]
    assert weights(scores, 0.2, "score") == pytest.approx([r / sum(raw) for r in raw])
    # the logit clips, as its_hub's: a certain score is finite, not infinite
    assert signal_of(1.0, "logit") == pytest.approx(math.log((1 - 1e-7) / 1e-7))
    assert weights([1.0, 0.0], 1.0)[0] == pytest.approx(1.0)
    assert effective_size([0.25] * 4) == pytest.approx(4) and effective_size([1, 0]) == 1


def _chi_square(counts: Counter, ws: list[float], total: int) -> float:
    return sum((counts[i] - total * w) ** 2 / (total * w) for i, w in enumerate(ws))


CHI2_3DF_999 = 16.266
"""The 0.999 quantile of the chi-square distribution with 3 degrees of freedom."""


def test_multinomial_resampling_draws_in_proportion_to_the_weights():
    # fixed seed: 4000 resamplings of 8 particles from these weights; the counts fit the
    # weights (chi-square below its 0.999 quantile) and do not fit uniform weights
    ws = [0.5, 0.3, 0.15, 0.05]
    rng = random.Random(1234)
    counts = Counter()
    for _ in range(4000):
        counts.update(resample(ws, 8, "multinomial", rng))
    total = sum(counts.values())
    assert total == 32000
    assert _chi_square(counts, ws, total) < CHI2_3DF_999
    assert _chi_square(counts, [0.25] * 4, total) > 100 * CHI2_3DF_999


def test_systematic_resampling_gives_floor_or_ceil_copies_with_the_same_mean():
    ws = [0.5, 0.3, 0.15, 0.05]
    rng = random.Random(99)
    counts = Counter()
    for _ in range(4000):
        drawn = Counter(resample(ws, 8, "systematic", rng))
        for i, w in enumerate(ws):  # every particle: floor or ceil of k * w copies
            assert math.floor(8 * w) <= drawn[i] <= math.ceil(8 * w)
        counts.update(drawn)
    assert _chi_square(counts, ws, sum(counts.values())) < CHI2_3DF_999


def test_resampling_never_draws_a_zero_weight_particle_and_is_seeded():
    ws = [0.0, 0.6, 0.0, 0.4]
    for scheme in ("multinomial", "systematic"):
        drawn = [resample(ws, 8, scheme, random.Random(s)) for s in range(200)]
        assert not {i for d in drawn for i in d} & {0, 2}
        assert resample(ws, 8, scheme, random.Random(5)) == resample(
            ws, 8, scheme, random.Random(5)
        )


# ---------------------------------------------------------------------------- the filter


def test_one_engine_call_and_one_prm_call_per_step_for_every_particle_of_every_problem():
    slots = Slots(["u0", "u1"])

    def script(request, i):
        uid, d, j = slots(request)
        if not request.stop:
            return eos(f"{uid} end{j} [0.5]")
        return step(f"{uid} d{d} j{j} [0.{j + 1}]")

    engine = ScriptedEngine(script)
    ctx = context(engine, n=4, iterations=3)
    calls = []
    score = ctx.prm.score
    ctx.prm.score = lambda pairs: calls.append(len(pairs)) or score(pairs)
    out = solve(engine, ctx, PROBLEMS)
    assert len(engine.calls) == 3 and calls == [8, 8, 8]
    assert all(len(call) == 8 for call in engine.calls)  # 4 particles x 2 problems, each step
    assert {slots(r)[0] for r in engine.calls[0]} == {"u0", "u1"}
    assert [r.stop for r in engine.calls[-1]] == [()] * 8  # the last step: to the end
    assert [len(cs) for cs in out] == [4, 4]
    for cs, uid in zip(out, ["u0", "u1"]):
        assert all(c.text.startswith(f"{uid} d0") and c.finished for c in cs)
        assert [c.extra["particle"] for c in cs] == [0, 1, 2, 3]
        assert [c.group for c in cs] == [0, 1, 2, 3]
        assert len(cs[0].extra["resampling"]) == 3 and cs[0].extra["iterations"] == 3
        assert cs[0].extra["sampled_temperatures"] == {"0.8": 12}


def test_resampling_follows_the_weights_exactly_as_its_seeded_generator_draws():
    # after step 0 the 4 particles score 0.1, 0.2, 0.3, 0.4: the copies the filter keeps are
    # exactly `resample(weights, 4, ...)` drawn from the generator seeded for (u0, depth 0)
    slots = Slots(["u0"])
    scores = [0.1, 0.2, 0.3, 0.4]

    def script(request, i):
        _, d, j = slots(request)
        return step(f"d{d} j{j} [{scores[j]}]") if d == 0 else eos(f"end [{0.5}]")

    engine = ScriptedEngine(script)
    solve(engine, context(engine, n=4, iterations=2, tau=0.5))
    rng = random.Random(derive_seed(SEED, "u0", "particle_filter", 0, "resample"))
    expected = resample(weights(scores, 0.5), 4, "multinomial", rng)
    assert [written(r) for r in engine.calls[1]] == [f"d0 j{j} [{scores[j]}]\n" for j in expected]


def test_a_small_tau_follows_the_prm_and_a_large_one_resamples_nearly_uniformly():
    slots = Slots(["u0"])

    def script(request, i):
        _, d, j = slots(request)
        return step(f"j{j} [0.{j + 1}]") if d == 0 else eos("end [0.5]")

    def survivors(tau):
        engine = ScriptedEngine(script)
        out = solve(engine, context(engine, n=8, iterations=2, tau=tau))[0]
        return out[0].extra["resampling"][0]

    greedy, flat = survivors(0.01), survivors(100.0)
    assert greedy["survivors"] == 1 and greedy["ess"] == pytest.approx(1, abs=1e-3)
    assert flat["ess"] == pytest.approx(8, rel=0.01) and flat["survivors"] >= 4


def test_finished_particles_stay_in_the_pool_and_never_grow_again():
    # step 0: particle 0 ends (EOS, score 0.9), the others write a step scoring 0.6; tau = 1
    # over the logit keeps the finished one with odds 9 against 1.5 each
    slots = Slots(["u0"])

    def script(request, i):
        _, d, j = slots(request)
        if d == 0:
            return eos("done [0.9]") if j == 0 else step(f"s{j} [0.6]")
        return step(f"d{d} j{j} [0.6]") if request.stop else eos(f"end{j} [0.6]")

    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, n=8, iterations=3))[0]
    assert all("done" not in written(r) for call in engine.calls for r in call)
    done = [c for c in out if c.text == "done [0.9]"]
    assert done and all(c.finished and c.extra["depth"] == 1 for c in done)
    firsts = {c.extra["copy_of"] for c in done if "copy_of" in c.extra}
    assert firsts <= {out.index(done[0])}
    # step 0's resampling copied the finished particle (weight 9 / 19.5) F times: step 1
    # grows exactly the 8 - F others, none of them a fresh start
    rng = random.Random(derive_seed(SEED, "u0", "particle_filter", 0, "resample"))
    drawn = resample(weights([0.9] + [0.6] * 7, 1.0), 8, "multinomial", rng)
    copies = drawn.count(0)
    assert copies > 1  # a good finished solution multiplies
    assert len(engine.calls[1]) == 8 - copies
    assert all(written(r).startswith("s") for r in engine.calls[1])
    assert len(out) == 8


def test_truncated_particles_weigh_nothing_under_finished_only():
    slots = Slots(["u0"])

    def script(request, i):
        _, d, j = slots(request)
        if d == 0:  # half the particles are cut off at the token limit with a high score
            return cut("cut [0.99]", 100) if j % 2 else step(f"ok{j} [0.3]")
        return eos(f"end{j} [0.5]")

    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, n=8, iterations=2))[0]
    assert all(c.finished for c in out)  # every copy came from the finishing line
    assert not any("cut" in c.text for c in out)
    # finished_only=false: the truncated text keeps its weight (and wins at 0.99)
    engine = ScriptedEngine(script)
    ctx = context(engine, n=8, iterations=2)
    ctx.approach.finished_only = False
    assert any("cut" in c.text for c in solve(engine, ctx)[0])


def test_step_temperatures_follow_the_plan_and_the_run_is_reproducible():
    slots = Slots(["u0"])

    def script(request, i):
        _, d, j = slots(request)
        return step(f"d{d} j{j} t{request.temperature} [0.{(j * 7 + d) % 9 + 1}]")

    def run(seed_shift=0):
        engine = ScriptedEngine(script)
        ctx = context(
            engine,
            n=6,
            iterations=3,
            values=(0.4, 1.2),
            temperature={"schedule": "linear", "start": 1.0, "end": 0.5, "horizon": 2},
        )
        return engine, solve(engine, ctx)[0]

    engine, out = run()
    for d, call in enumerate(engine.calls):
        f = 1.0 - 0.25 * d
        assert Counter(r.temperature for r in call) == {round(0.4 * f, 6): 3, round(1.2 * f, 6): 3}
    again = run()[1]
    assert [c.text for c in again] == [c.text for c in out]
    assert all(len(c.step_temperatures) == len(c.steps) for c in out)


def test_tau_schedule_and_labels():
    r = ResamplingConfig(tau=0.5, schedule="linear", start=2.0, end=0.5, horizon=4)
    plan = tau_plan(r)
    assert [0.5 * plan.factor(d) for d in (0, 2, 4, 9)] == pytest.approx([1.0, 0.625, 0.25, 0.25])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tau": 0.0}, "approach.resampling.tau=0.0 must be positive"),
        ({"scheme": "stratified"}, "approach.resampling.scheme='stratified' is unknown"),
        ({"signal": "odds"}, "approach.resampling.signal='odds' is unknown"),
        ({"start": 2.0}, "have no effect with resampling.schedule=constant"),
        ({"schedule": "exp"}, "approach.resampling.schedule='exp' is unknown"),
    ],
)
def test_resampling_settings_are_checked(settings, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        check_approach(ParticleFilterConfig(resampling=ResamplingConfig(**settings)), 8)


def test_particle_filter_is_registered():
    assert isinstance(build_approach("particle_filter"), ParticleFilter)


def test_a_stored_config_is_typed_by_its_approach_name():
    """config.yaml read back (rescore, merge): the approach gets its own schema by name."""
    from hotncold.config import AdaptiveBoNConfig, ApproachConfig
    from hotncold.experiment.run import to_config

    pf = to_config({"approach": {"name": "particle_filter", "resampling": {"tau": 0.5}}})
    assert isinstance(pf.approach, ParticleFilterConfig) and pf.approach.resampling.tau == 0.5
    ab = to_config({"approach": {"name": "adaptive_bon", "signal": "entropy"}})
    assert isinstance(ab.approach, AdaptiveBoNConfig) and ab.approach.signal == "entropy"
    assert type(to_config({"approach": {"name": "dvts"}}).approach) is ApproachConfig
