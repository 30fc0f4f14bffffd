"""Best-of-N semantics on a scripted engine: one call, exact shares, interleaving, records."""

from __future__ import annotations

from fakes import ScriptedEngine, problem_of

from hotncold.config import (
    ApproachConfig,
    EquationCheckerConfig,
    ModelConfig,
    TemperatureConfig,
)
from hotncold.data import Problem
from hotncold.engine.requests import Generation
from hotncold.prm.equation_checker import EquationChecker
from hotncold.search.base import SearchContext
from hotncold.search.registry import build_approach
from hotncold.search.temperature import TemperaturePlan


def context(engine, values, n, ratios=None, delimiter="\n"):
    return SearchContext(
        engine=engine,
        prm=EquationChecker(EquationCheckerConfig()),
        plan=TemperaturePlan.from_config(TemperatureConfig(values=values, ratios=ratios)),
        model=ModelConfig(max_tokens=50, step_delimiter=delimiter),
        approach=ApproachConfig(),
        n=n,
        seed=7,
    )


def script(request, i):
    # the text says which temperature and sample index made it
    problem = problem_of(request.prompt)
    return f"{problem} at {request.temperature}\n1 + {i} = {1 + i}\nThe answer is {i}."


PROBLEMS = [Problem(uid=f"u{i}", problem=f"p{i}", answer="0") for i in range(3)]


def solve(engine, ctx, problems=PROBLEMS):
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in problems]
    return build_approach("best_of_n").solve(problems, prompts, ctx)


def test_one_engine_call_one_request_per_problem_and_temperature():
    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, [0.4, 0.8, 1.2], n=12, ratios=[0.33, 0.34, 0.33]))
    assert len(engine.calls) == 1
    requests = engine.calls[0]
    assert [(problem_of(r.prompt), r.temperature, r.n) for r in requests] == [
        (p.problem, t, 4) for p in PROBLEMS for t in (0.4, 0.8, 1.2)
    ]
    assert len({r.seed for r in requests}) == len(requests)  # every request seeded apart
    assert all(r.max_tokens == 50 and r.stop == () for r in requests)
    assert [len(cs) for cs in out] == [12, 12, 12]


def test_completions_are_interleaved_and_record_their_temperature():
    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, [0.4, 0.8, 1.2], n=6))
    temps = [c.temperature for c in out[0]]
    assert temps == [0.4, 0.8, 1.2, 0.4, 0.8, 1.2]
    for c in out[0]:
        assert c.text.startswith(f"p0 at {c.temperature}")
        assert c.step_temperatures == [c.temperature] * len(c.steps)
    # the two samples of 0.4 are the two the engine returned, in order
    assert [c.text.split("\n")[1] for c in out[0] if c.temperature == 0.4] == [
        "1 + 0 = 1",
        "1 + 1 = 2",
    ]


def test_steps_are_scored_by_the_prm():
    engine = ScriptedEngine(script)
    c = solve(engine, context(engine, [0.8], n=2))[0][1]
    assert c.steps == ["p0 at 0.8", "1 + 1 = 2", "The answer is 1."]
    assert c.step_scores == [0.5, 1.0, 0.5]


def test_greedy_generates_once_and_repeats():
    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, [0.0, 1.0], n=4))
    assert [(r.temperature, r.n) for r in engine.calls[0][:2]] == [(0.0, 1), (1.0, 2)]
    greedy = [c for c in out[0] if c.temperature == 0.0]
    assert len(greedy) == 2 and greedy[0].text == greedy[1].text


def test_finish_reasons_and_token_counts():
    def cut(request, i):
        if i == 0:
            return Generation(text="1 + 1 = 2", num_tokens=50, finish_reason="length")
        return Generation(text="1 + 1 = 2\nThe answer is 2", num_tokens=9, finish_reason="stop")

    engine = ScriptedEngine(cut)
    out = solve(engine, context(engine, [0.8], n=2), PROBLEMS[:1])[0]
    assert [(c.finish_reason, c.finished, c.num_tokens) for c in out] == [
        ("length", False, 50),
        ("eos", True, 9),
    ]
