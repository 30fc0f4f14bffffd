"""The answer-aware stop (`approach.answer_stop`): a solution ends right after its first
complete `\\boxed{...}`, for Best-of-N, beam search and DVTS; on a scripted engine that cuts
at stop strings as vLLM does, and on the real engine."""

from __future__ import annotations

import json

import pytest
from fakes import ScriptedEngine, continuing, one_of, problem_of
from test_search import TagPRM

import hotncold.engine.vllm_engine
from hotncold.config import (
    ApproachConfig,
    Config,
    DatasetConfig,
    EquationCheckerConfig,
    ModelConfig,
    TemperatureConfig,
)
from hotncold.data import Problem
from hotncold.engine import answer_stop
from hotncold.engine.requests import GenerationRequest
from hotncold.experiment.run import execute
from hotncold.prm.equation_checker import EquationChecker
from hotncold.search.base import SearchContext
from hotncold.search.registry import build_approach
from hotncold.search.temperature import TemperaturePlan

HALF = "Half of 1.\nSo $\\boxed{ \\frac{1}{2} }$. I hope it is correct.\nAnd then some more words"
PLAIN = "No box here, the answer is 3."
PROBLEMS = [Problem(uid=f"u{i}", problem=f"p{i}", answer="0") for i in range(2)]


def context(engine, approach="best_of_n", n=2, max_tokens=50, prm=None, **fields):
    return SearchContext(
        engine=engine,
        prm=prm or EquationChecker(EquationCheckerConfig()),
        plan=TemperaturePlan.from_config(TemperatureConfig(values=[0.8])),
        model=ModelConfig(max_tokens=max_tokens, step_delimiter="\n"),
        # barrier: requests read from engine.calls (async: tests/test_schedule.py)
        approach=ApproachConfig(name=approach, **{"scheduler": "barrier", **fields}),
        n=n,
        seed=7,
    )


def solve(engine, ctx, problems=PROBLEMS):
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in problems]
    return build_approach(ctx.approach.name).solve(problems, prompts, ctx)


def test_best_of_n_text_ends_right_after_the_balanced_box():
    engine = ScriptedEngine(continuing(one_of([HALF, PLAIN])), honor_stops=True)
    out = solve(engine, context(engine, answer_stop=True))
    for cs in out:
        cut, plain = cs
        assert cut.text == "Half of 1.\nSo $\\boxed{ \\frac{1}{2} }"
        assert cut.finish_reason == "answer" and cut.finished
        assert cut.steps[-1] == "So $\\boxed{ \\frac{1}{2} }"
        assert cut.num_tokens == 5 + 2  # up to the opening (5 words), then 2 rounds
        assert plain.text == PLAIN and plain.finish_reason == "eos"
    # the samples themselves, then a round per closing brace: " \frac{1}" (its token, the
    # word, goes on to "{2}": read whole), then " }"
    assert len(engine.calls) == 3
    assert [r.stop for r in engine.calls[0]] == [("boxed{",)] * 2
    assert all(r.stop == ("}",) and r.n == 1 for call in engine.calls[1:] for r in call)
    assert [len(call) for call in engine.calls[1:]] == [2, 2]  # one open box per problem
    assert engine.calls[2][0].prompt.endswith("$\\boxed{ \\frac{1}{2}")  # the whole token
    seeds = [r.seed for call in engine.calls for r in call]
    assert len(set(seeds)) == len(seeds)  # every round seeded apart
    assert engine.stats.answer_stops == 2
    assert engine.stats.answer_stop_unspent == 2 * (50 - out[0][0].num_tokens)


def test_off_by_default_the_model_writes_on():
    engine = ScriptedEngine(continuing(one_of([HALF, PLAIN])), honor_stops=True)
    out = solve(engine, context(engine))
    assert [c.text for c in out[0]] == [HALF, PLAIN]
    assert [c.finish_reason for c in out[0]] == ["eos", "eos"]
    assert len(engine.calls) == 1 and engine.calls[0][0].stop == ()
    assert engine.stats.answer_stops == 0


def generate_one(text, max_tokens=50, stop=()):
    engine = ScriptedEngine(continuing(one_of([text])), honor_stops=True)
    request = GenerationRequest(
        prompt="<user>p<assistant>",
        temperature=0.8,
        max_tokens=max_tokens,
        seed=1,
        stop=stop,
        answer_stop=True,
    )
    return answer_stop.generate(engine, [request])[0][0], engine


def test_a_token_that_closes_the_box_ends_it_there():
    g, engine = generate_one("So $\\boxed{\\frac{1}{2}}$. I hope it is correct.")
    assert (g.text, g.finish_reason, g.num_tokens) == ("So $\\boxed{\\frac{1}{2}}", "answer", 2)
    assert len(engine.calls) == 1  # the stop cut the token "$\boxed{\frac{1}{2}}$.": its rest
    # closed the answer, which ends at its closing brace


def test_a_box_the_model_never_closes_ends_as_the_model_ended_it():
    g, _ = generate_one("So \\boxed{12 and on")
    assert (g.text, g.finish_reason, g.stop_reason) == ("So \\boxed{12 and on", "stop", None)
    assert g.ended


def test_a_box_cut_by_the_token_limit_is_truncated():
    g, _ = generate_one("So \\boxed{1 2 3 4 5 6 7 8}", max_tokens=4)
    assert g.finish_reason == "length" and g.num_tokens == 4


def test_the_opening_at_the_last_token_is_truncated_there():
    g, engine = generate_one("a b c d \\boxed{ 7 } e", max_tokens=5)
    assert (g.text, g.finish_reason) == ("a b c d \\boxed{", "length")
    assert len(engine.calls) == 1  # no budget left to close it


def test_a_box_open_after_every_round_goes_on_as_asked():
    deep = "\\boxed{ " + "{a} " * answer_stop.MAX_ROUNDS + "} then more\nand more"
    g, engine = generate_one(deep, max_tokens=200, stop=("\n",))
    assert len(engine.calls) == 2 + answer_stop.MAX_ROUNDS
    assert engine.calls[-1][0].stop == ("\n",)  # the last round: the request's own stops
    assert g.text == deep[: deep.index("\n") + 1] and g.stop_reason == "\n"


def searched(approach, answer_stop_on):
    """A search whose every candidate writes a step, then its answer, then more steps."""
    text = "Step one [0.9]\nSo $\\boxed{5}$ [0.8]\nExtra step [0.9]\nMore [0.9]\n"

    def full_text(written, request, i):
        return text

    engine = ScriptedEngine(continuing(full_text), honor_stops=True)
    ctx = context(
        engine,
        approach,
        n=4,
        max_tokens=100,
        prm=TagPRM(),
        beam_width=2,
        num_iterations=6,
        answer_stop=answer_stop_on,
    )
    return solve(engine, ctx, PROBLEMS[:1])[0], engine


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
def test_step_search_candidates_end_at_their_answer(approach):
    out, engine = searched(approach, True)
    for c in out:
        assert c.text == "Step one [0.9]\nSo $\\boxed{5}"
        assert c.finish_reason == "answer" and c.finished
        assert c.steps == ["Step one [0.9]", "So $\\boxed{5}"]
        assert len(c.step_scores) == 2
        assert c.extra["depth"] == 2 and c.extra["iterations"] == 2  # nothing grown after it
    # iteration 0: the steps; iteration 1: up to the opening, whose token "$\boxed{5}$" closes it
    assert len(engine.calls) == 2


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
def test_step_search_without_the_stop_grows_past_the_answer(approach):
    out, _ = searched(approach, False)
    assert all(c.text.startswith("Step one [0.9]\nSo $\\boxed{5}$ [0.8]\nExtra") for c in out)
    assert all(c.extra["depth"] > 2 for c in out)


def test_run_json_counts_the_stops(tmp_path, monkeypatch):
    def full_text(written, request, i):
        return f"{problem_of(request.prompt)} is $\\boxed{{{i}}}$. I hope it is correct."

    fake = ScriptedEngine(continuing(full_text), honor_stops=True)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: fake)
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        n=4,
        dataset=DatasetConfig(per_level=1, levels=[1, 2]),
        approach=ApproachConfig(answer_stop=True),
    )
    execute(cfg)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["totals"]["answer_stops"] == 2 * 4
    assert info["totals"]["answer_stop_unspent"] == fake.stats.answer_stop_unspent > 0
    records = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").open()]
    for record in records:
        for c in record["completions"]:
            assert c["text"].endswith("}") and c["finish_reason"] == "answer" and c["finished"]


# The real path: the embedded SmolLM2 continuing a few-shot pattern of boxed answers, greedy.
FEW_SHOT = (
    "Q: half of 1? A: \\boxed{\\frac{1}{2}}\nQ: half of 3? A: \\boxed{\\frac{3}{2}}\n"
    "Q: half of 5? A:"
)


@pytest.mark.slow
def test_real_engine_stops_right_after_the_answer(real_engine):
    plain = GenerationRequest(prompt=FEW_SHOT, temperature=0.0, max_tokens=60, seed=3)
    stopped = GenerationRequest(
        prompt=FEW_SHOT, temperature=0.0, max_tokens=60, seed=3, answer_stop=True
    )
    before = real_engine.stats.generated_tokens, real_engine.stats.answer_stops
    (whole,), (cut,) = answer_stop.generate(real_engine, [plain, stopped])
    assert cut.finish_reason == "answer"
    assert cut.text.endswith("}") and "boxed{" in cut.text
    opened = cut.text.index("boxed{") + len("boxed{")
    assert cut.text[opened:].count("{") + 1 == cut.text[opened:].count("}")  # balanced, just
    # greedy: the same text as the uncut sample up to the answer's end, and fewer tokens
    assert whole.text.startswith(cut.text) and len(whole.text) > len(cut.text)
    assert cut.num_tokens < whole.num_tokens
    assert real_engine.stats.answer_stops == before[1] + 1
    assert real_engine.stats.generated_tokens - before[0] == whole.num_tokens + cut.num_tokens
