"""Adaptive Best-of-N's semantics on a scripted engine: probe size, the temperature chosen from
a probe, budget accounting, the records."""

from __future__ import annotations

import pytest
from fakes import ScriptedEngine, problem_of
from test_search import NL, SEED, TagPRM, eos

from hotncold.config import (
    AdaptiveBoNConfig,
    ApproachConfig,
    ConfigError,
    ModelConfig,
    TemperatureConfig,
)
from hotncold.data import Problem
from hotncold.engine.requests import Generation
from hotncold.search.adaptive_bon import choose, disagreement, probe_size
from hotncold.search.base import SearchContext
from hotncold.search.registry import build_approach, check_approach
from hotncold.search.temperature import TemperaturePlan, check_temperature

LADDER = (0.4, 0.8, 1.2)


def context(engine, n=8, values=LADDER, **policy):
    return SearchContext(
        engine=engine,
        prm=TagPRM(),
        plan=TemperaturePlan.from_config(TemperatureConfig(values=list(values))),
        model=ModelConfig(max_tokens=50, step_delimiter=NL),
        approach=AdaptiveBoNConfig(**policy),
        n=n,
        seed=SEED,
        agg_strategy="last",
    )


def solve(engine, ctx, problems):
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in problems]
    return build_approach("adaptive_bon").solve(problems, prompts, ctx)


def answering(answers: dict[str, list[str]]):
    """Probe sample i of problem p answers answers[p][i]; the rest answers 0."""

    def script(request, i):
        if request.temperature == 0.4 and request.n < 8:  # the probe (the rest is n=12)
            a = answers[problem_of(request.prompt)][i]
            return eos(f"so \\boxed{{{a}}} [0.{i + 1}]")
        return eos("then \\boxed{0} [0.5]")

    return script


def test_probe_size_is_a_quarter_of_the_budget_rounded_up_and_at_least_two():
    assert [probe_size(0.25, n) for n in (3, 4, 8, 9, 16, 64)] == [2, 2, 2, 3, 4, 16]
    assert probe_size(0.125, 16) == 2 and probe_size(0.125, 64) == 8


@pytest.mark.parametrize(
    ("signal", "answers", "d"),
    [
        ("majority", ["1", "1", "1", "1"], 0.0),
        ("majority", ["1", "1", "1", "2"], 1 / 3),
        ("majority", ["1", "1", "2", "2"], 2 / 3),
        ("majority", ["1", "2", "3", "4"], 1.0),
        ("majority", ["1", None, None, "1"], 0.0),  # no answer: not counted
        ("majority", ["1", None, "2", None], 1.0),
        ("majority", ["1", None], 0.0),  # one answer cannot disagree
        ("majority", [None, None], 0.0),
        ("entropy", ["1", None, "2", None], 1.0),
        ("majority", ["7", "8"], 1.0),
        ("entropy", ["1", "1", "2", "2"], 0.5),
        ("entropy", ["1", "2", "3", "4"], 1.0),
        ("entropy", ["5", "5"], 0.0),
    ],
)
def test_disagreement_of_a_probe(signal, answers, d):
    assert disagreement(signal, answers, [0.5] * len(answers)) == pytest.approx(d)


@pytest.mark.parametrize(
    ("signal", "answers", "d"),
    [
        ("majority", ["1", None, None, "1"], 2 / 3),  # no answer: an answer of its own
        ("majority", [None, None], 1.0),
        ("entropy", ["1", "1", None, None], 1.5 * 0.5),  # shares 1/2, 1/4, 1/4 over log 4
    ],
)
def test_disagreement_counting_each_unanswered_sample_as_an_answer_of_its_own(signal, answers, d):
    scores = [0.5] * len(answers)
    assert disagreement(signal, answers, scores, "distinct") == pytest.approx(d)


def test_prm_spread_is_the_range_of_the_probe_scores():
    assert disagreement("prm_spread", ["1", "1", "1"], [0.2, 0.9, 0.5]) == pytest.approx(0.7)


def test_the_mapping_stays_cold_when_the_probe_agrees_and_heats_up_when_it_does_not():
    assert [choose(d, LADDER, None) for d in (0, 0.3, 1 / 3, 0.5, 2 / 3, 0.99, 1)] == [
        0.4,
        0.4,
        0.8,
        0.8,
        1.2,
        1.2,
        1.2,
    ]
    assert [choose(d, LADDER, [0.1, 0.9]) for d in (0.0, 0.1, 0.5, 0.9, 1.0)] == [
        0.4,
        0.8,
        0.8,
        1.2,
        1.2,
    ]


def test_two_engine_calls_probe_then_rest_at_the_chosen_temperature_within_budget_n():
    problems = [Problem(uid=f"u{i}", problem=f"p{i}", answer="1") for i in range(3)]
    # n=16: a probe of 4 at 0.4. p0 agrees (-> 0.4), p1 splits 3-1 (-> 0.8), p2 2-1-1 (-> 1.2)
    probes = {"p0": ["3"] * 4, "p1": ["3", "3", "3", "5"], "p2": ["3", "3", "5", "6"]}
    engine = ScriptedEngine(answering(probes))
    out = solve(engine, context(engine, n=16), problems)
    probe_call, rest_call = engine.calls
    assert [(r.temperature, r.n) for r in probe_call] == [(0.4, 4)] * 3
    assert [(r.temperature, r.n) for r in rest_call] == [(0.4, 12), (0.8, 12), (1.2, 12)]
    for cs, chosen, d in zip(out, (0.4, 0.8, 1.2), (0.0, 1 / 3, 2 / 3)):
        assert len(cs) == 16  # probe + rest = n
        assert [c.extra["phase"] for c in cs] == ["probe"] * 4 + ["rest"] * 12
        assert [c.temperature for c in cs] == [0.4] * 4 + [chosen] * 12
        decision = cs[0].extra["adaptive"]
        assert decision == cs[-1].extra["adaptive"]
        assert decision["chosen_temperature"] == chosen and decision["probe"] == 4
        assert decision["rest"] == 12 and decision["probe_temperature"] == 0.4
        assert decision["disagreement"] == pytest.approx(d, abs=1e-6)
        assert sum(cs[0].extra["sampled_temperatures"].values()) == 16
        assert cs[0].extra["allocations"] == 2
        assert [c.group for c in cs] == list(range(16))
        assert all(c.step_scores for c in cs)  # every sample scored by the PRM


def test_an_unfinished_probe_sample_has_no_answer_under_finished_only():
    def script(request, i):
        if request.n == 2:  # the probe: one finished, one cut off writing the same answer
            if i == 0:
                return eos("\\boxed{3} [0.5]")
            return Generation("\\boxed{3} and", 50, "length")
        return eos("\\boxed{3} [0.5]")

    problems = [Problem(uid="u0", problem="p0", answer="3")]
    engine = ScriptedEngine(script)
    cs = solve(engine, context(engine, n=8, unanswered="distinct"), problems)[0]
    assert cs[0].extra["adaptive"]["chosen_temperature"] == 1.2  # p=2, d=1: the hottest
    assert cs[0].extra["adaptive"]["answered"] == 1
    engine = ScriptedEngine(script)
    cs = solve(engine, context(engine, n=8, finished_only=False), problems)[0]
    assert cs[0].extra["adaptive"]["chosen_temperature"] == 0.4
    assert cs[0].extra["adaptive"]["answered"] == 2


def test_a_probe_cut_off_before_answering_stays_cold_by_default():
    """The default (`unanswered: ignore`): truncated probe samples are no sign of disagreement,
    so a probe that never finished does not heat the rest up (it did before the setting)."""

    def script(request, i):
        if request.n == 2:  # the probe: both cut off by the token limit
            return Generation("the sum is 3 and then", 50, "length")
        return eos("\\boxed{3} [0.5]")

    problems = [Problem(uid=f"u{k}", problem=f"p{k}", answer="3") for k in range(3)]
    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, n=8), problems)
    assert [cs[0].extra["adaptive"]["chosen_temperature"] for cs in out] == [0.4] * 3
    assert [cs[0].extra["adaptive"]["answered"] for cs in out] == [0] * 3
    assert [r.temperature for r in engine.calls[1]] == [0.4] * 3


def test_probe_temperature_and_signal_are_settings():
    problems = [Problem(uid="u0", problem="p0", answer="3")]
    engine = ScriptedEngine(lambda r, i: eos(f"\\boxed{{{i}}} [0.{i + 1}]"))
    cs = solve(engine, context(engine, n=8, probe_temperature=0.6, signal="prm_spread"), problems)[
        0
    ]
    assert engine.calls[0][0].temperature == 0.6
    # probe scores 0.1, 0.2: spread 0.1 -> the coldest value of the ladder
    assert cs[0].extra["adaptive"]["disagreement"] == pytest.approx(0.1)
    assert cs[0].extra["adaptive"]["chosen_temperature"] == 0.4


@pytest.mark.parametrize(
    ("n", "policy", "values", "message"),
    [
        (2, {}, LADDER, "leaving none for the rest; raise n"),
        (8, {"probe_fraction": 1.0}, LADDER, "probe_fraction=1 must be between 0 and 1"),
        (8, {"signal": "vibes"}, LADDER, "approach.signal='vibes' is unknown"),
        (8, {"unanswered": "skip"}, LADDER, "approach.unanswered='skip' is unknown"),
        (8, {"thresholds": [0.6, 0.2]}, LADDER, "must be increasing values in"),
        (8, {"thresholds": [0.5]}, LADDER, "has 1 cut points for 3 temperatures; give 2"),
        (8, {}, (0.8,), "leaves nothing to choose; give a ladder"),
    ],
)
def test_adaptive_settings_are_checked(n, policy, values, message):
    a = AdaptiveBoNConfig(**policy)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_approach(a, n)
        check_temperature(TemperatureConfig(values=list(values)), a, n)


def test_another_approach_option_renamed_is_refused():
    with pytest.raises(ConfigError, match="choose it as an option instead: approach=adaptive_bon"):
        check_approach(ApproachConfig(name="adaptive_bon"), 8)
