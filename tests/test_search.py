"""Beam search and DVTS semantics on a scripted engine and a scripted PRM.

The script knows which candidate it is answering from the request's seed (every request's seed
is `derive_seed(run seed, problem uid, approach, depth, beam, candidate)`), so each test states
exactly what every candidate writes and how the PRM scores it, and checks which beams survive,
what they are expanded into, at which temperature, and what comes out.
"""

from __future__ import annotations

import itertools
import re
from typing import NamedTuple

import pytest
from fakes import ScriptedEngine, problem_of

from hotncold.config import ApproachConfig, ModelConfig, TemperatureConfig
from hotncold.data import Problem
from hotncold.engine.requests import Generation, derive_seed
from hotncold.prm.base import PRM, ItemScores, split_steps
from hotncold.search.base import SearchContext
from hotncold.search.beam_search import expansion_counts
from hotncold.search.registry import build_approach
from hotncold.search.steps import BLANK_RETRIES, Limits, Node, StepTask, generate_steps
from hotncold.search.temperature import TemperaturePlan

SEED = 7
NL = "\n"


class TagPRM(PRM):
    """Scores a step by its `[0.7]` tag (0.5 without one); records every step it computes."""

    def __init__(self) -> None:
        super().__init__()
        self.computed: list[str] = []

    def _score_new(self, items):
        out = []
        for item in items:
            new = item.steps[item.start :]
            self.computed += new
            out.append(ItemScores([_tag(step) for step in new], 0))
        return out


def _tag(step: str) -> float:
    found = re.search(r"\[([0-9.]+)\]", step)
    return float(found.group(1)) if found else 0.5


def step(text: str, tokens: int | None = None) -> Generation:
    """A step that ended at the delimiter."""
    return Generation(text + NL, tokens or len(text.split()), "stop", stop_reason=NL)


def eos(text: str, tokens: int | None = None) -> Generation:
    return Generation(text, tokens or max(1, len(text.split())), "stop")


def cut(text: str, tokens: int) -> Generation:
    return Generation(text, tokens, "length")


class Slot(NamedTuple):
    uid: str
    depth: int
    beam: int
    """The beam's rank (beam search) or the subtree (DVTS)."""
    j: int
    """The candidate's index among its beam's expansions."""
    attempt: int
    """0, or the blank retry round."""


class Who:
    """Which slot a request's seed stands for."""

    def __init__(self, approach: str, uids, depths=8, beams=16, candidates=32) -> None:
        self.table = {}
        for uid, d, b, j in itertools.product(uids, range(depths), range(beams), range(candidates)):
            seed = derive_seed(SEED, uid, approach, d, b, j)
            self.table[seed] = Slot(uid, d, b, j, 0)
            for attempt in range(1, BLANK_RETRIES + 1):
                self.table[derive_seed(seed, "blank", attempt)] = Slot(uid, d, b, j, attempt)

    def __call__(self, request) -> Slot:
        return self.table[request.seed]


PROBLEMS = [Problem(uid=f"u{i}", problem=f"p{i}", answer="1") for i in range(3)]


def context(
    engine,
    approach="beam_search",
    n=8,
    m=4,
    iterations=3,
    values=(0.8,),
    agg="last",
    prm=None,
    max_tokens=100,
    temperature=None,
    **approach_fields,
):
    return SearchContext(
        engine=engine,
        prm=prm or TagPRM(),
        plan=TemperaturePlan.from_config(
            TemperatureConfig(values=list(values), **(temperature or {}))
        ),
        model=ModelConfig(max_tokens=max_tokens, step_delimiter=NL),
        # barrier: these tests read each iteration's requests from `engine.calls`, one engine
        # call per iteration (tests/test_schedule.py checks async writes the same records)
        approach=ApproachConfig(
            name=approach,
            beam_width=m,
            num_iterations=iterations,
            **{"scheduler": "barrier", **approach_fields},
        ),
        n=n,
        seed=SEED,
        agg_strategy=agg,
    )


def solve(engine, ctx, problems=PROBLEMS[:1]):
    prompts = [engine.format_chat([{"role": "user", "content": p.problem}]) for p in problems]
    return build_approach(ctx.approach.name).solve(problems, prompts, ctx)


def written(request) -> str:
    """The solution text a request continues (its prompt after the chat header)."""
    return request.prompt.split("<assistant>", 1)[1]


# ---------------------------------------------------------------------------------- beam search

ROOT_SCORES = [0.1, 0.9, 0.3, 0.8, 0.2, 0.4, 0.5, 0.6]


def beam_script(who):
    def script(request, i):
        w = who(request)
        if not request.stop:  # the last iteration: write to the end
            return eos(f"end d{w.depth} b{w.beam} j{w.j} [0.{w.j + 1}]")
        if w.depth == 0:
            return step(f"root j{w.j} [{ROOT_SCORES[w.j]}]")
        return step(f"d{w.depth} b{w.beam} j{w.j} [0.{9 - w.j}]")

    return script


def test_beam_search_keeps_the_best_n_over_m_and_expands_each_m_times():
    who = Who("beam_search", ["u0"])
    engine = ScriptedEngine(beam_script(who))
    out = solve(engine, context(engine, n=8, m=4, iterations=3))[0]
    assert len(engine.calls) == 3  # one engine call per iteration
    root, second, last = engine.calls
    assert [who(r)[1:4] for r in root] == [(0, 0, j) for j in range(8)]
    assert all(written(r) == "" and r.stop == (NL,) for r in root)
    # the 2 best roots (0.9 then 0.8) survive, each expanded 4 times, in rank order
    assert [(who(r).beam, written(r)) for r in second] == [(0, "root j1 [0.9]\n")] * 4 + [
        (1, "root j3 [0.8]\n")
    ] * 4
    # depth 1 scores 0.9, 0.8, 0.7, 0.6 by candidate: j0 of each beam survives (the two tie
    # at 0.9, so which is beam 0 next is drawn at random)
    assert (
        sorted(written(r) for r in last)
        == ["root j1 [0.9]\nd1 b0 j0 [0.9]\n"] * 4 + ["root j3 [0.8]\nd1 b1 j0 [0.9]\n"] * 4
    )
    assert all(r.stop == () for r in last)  # the last iteration generates to the end
    # n completions, best final score first (agg=last); every one finished by EOS
    assert len(out) == 8
    assert [c.step_scores[-1] for c in out] == [0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1]
    assert out[0].steps[-1].endswith("j3 [0.4]") and out[0].steps[0] in (
        "root j1 [0.9]",
        "root j3 [0.8]",
    )
    assert out[0].text == NL.join(out[0].steps)
    assert all(c.finish_reason == "eos" and c.finished for c in out)
    for c in out:
        assert c.steps == split_steps(c.text, NL)  # steps are exactly the text's steps
        assert len(c.step_scores) == len(c.step_temperatures) == len(c.steps)
        assert c.extra["iterations"] == 3 and c.extra["depth"] == 3
        assert c.step_temperatures == [0.8] * 3 and c.temperature == 0.8


@pytest.mark.parametrize(
    ("agg", "first"), [("last", "s [0.2]\nt [0.8]"), ("min", "u [0.6]"), ("prod", "u [0.6]")]
)
def test_agg_strategy_ranks_the_final_pool(agg, first):
    finals = ["s [0.2]\nt [0.8]", "u [0.6]", "v [0.1]", "w [0.05]"]

    def script(request, i):
        j = who(request).j
        return step(f"root j{j} [0.9]") if request.stop else eos(finals[j])

    who = Who("beam_search", ["u0"])
    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, n=4, m=4, iterations=2, agg=agg))[0]
    # last ranks [.9 .2 .8] above [.9 .6]; min and prod rank it below
    assert out[0].text == f"root j0 [0.9]\n{first}"


def test_finished_candidates_go_to_the_pool_and_free_their_beam_slot():
    who = Who("beam_search", ["u0"])

    def script(request, i):
        w = who(request)
        if w.depth == 0 and w.j == 1:
            return eos("root j1 done [0.95]")  # the best root ends at once
        if w.depth == 0:
            return step(f"root j{w.j} [{ROOT_SCORES[w.j]}]")
        if not request.stop:
            return eos(f"end b{w.beam} j{w.j} [0.1]")
        return step(f"d{w.depth} b{w.beam} j{w.j} [0.5]")

    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, n=8, m=4, iterations=3))[0]
    second = engine.calls[1]
    # the finished root is not expanded; the next two (0.8, 0.6) survive
    assert {written(r) for r in second} == {"root j3 [0.8]\n", "root j7 [0.6]\n"}
    assert out[0].text == "root j1 done [0.95]" and out[0].extra["depth"] == 1


def test_finished_only_returns_finished_solutions_repeated_to_fill_n():
    who = Who("beam_search", ["u0"])

    def script(request, i):
        w = who(request)
        if request.stop:
            return step(f"root j{w.j} 1 + 1 = 2 [1.0]")
        # the last iteration: one candidate of each beam ends, the other runs out of tokens
        if w.j == 1:
            return eos(f"The answer is {w.beam + 1}. [0.5]")
        return cut(f"{w.beam} + 1 = [0.9]", 50)

    for finished_only in (True, False):
        engine = ScriptedEngine(script)
        ctx = context(engine, n=4, m=2, iterations=2, agg="min", finished_only=finished_only)
        out = solve(engine, ctx)[0]
        if finished_only:
            # min ranks the truncated ones (0.9) first, but only the finished ones count
            assert [c.text.split(NL)[1] for c in out] == [
                "The answer is 1. [0.5]",
                "The answer is 2. [0.5]",
            ] * 2
            assert [c.extra.get("copy_of") for c in out] == [None, None, 0, 1]
            assert all(c.finished and c.extra["dropped_unfinished"] == 2 for c in out)
        else:  # search-and-learn: the best of the pool, truncated or not
            assert [c.finish_reason for c in out] == ["length", "length", "eos", "eos"]


def test_fewer_survivors_share_the_n_expansions_best_first():
    assert expansion_counts(8, 2) == [4, 4]
    assert expansion_counts(8, 3) == [3, 3, 2]
    assert expansion_counts(8, 1) == [8]
    who = Who("beam_search", ["u0"])

    def script(request, i):
        w = who(request)
        if w.depth == 0:
            # only two roots go on; the rest end
            return step(f"root j{w.j} [0.{w.j + 1}]") if w.j in (2, 5) else eos(f"r{w.j} [0.05]")
        return step(f"d{w.depth} b{w.beam} j{w.j}") if request.stop else eos("end")

    engine = ScriptedEngine(script)
    solve(engine, context(engine, n=12, m=3, iterations=2))
    # 4 beams may survive but only 2 unfinished candidates exist: they share all 12 expansions
    assert [who(r).beam for r in engine.calls[1]] == [0] * 6 + [1] * 6
    assert written(engine.calls[1][0]) == "root j5 [0.6]\n"


def by_beam(who, call) -> dict[int, list[float]]:
    """The temperatures of each beam's expansions in one engine call."""
    out: dict[int, list[float]] = {}
    for r in call:
        out.setdefault(who(r).beam, []).append(r.temperature)
    return out


def test_per_beam_temperatures_cycle_through_the_values():
    who = Who("beam_search", ["u0"])
    engine = ScriptedEngine(beam_script(who))
    out = solve(engine, context(engine, n=8, m=4, iterations=3, values=(0.4, 0.8)))[0]
    root, second, _ = engine.calls
    assert [r.temperature for r in root] in ([0.4, 0.8] * 4, [0.8, 0.4] * 4)  # interleaved
    # each survivor is tried at every temperature, in its exact share
    for temps in by_beam(who, second).values():
        assert sorted(temps) == [0.4, 0.4, 0.8, 0.8] and temps[0] != temps[1]
    for c in out:
        assert len(c.step_temperatures) == 3
        assert c.temperature == (
            c.step_temperatures[0] if len(set(c.step_temperatures)) == 1 else None
        )
    # the best completion grew from root j1 or j3 (odd slots share a temperature)
    assert out[0].step_temperatures[0] == root[1].temperature


def test_ratios_split_each_beams_expansions_by_largest_remainder():
    who = Who("beam_search", ["u0"])
    engine = ScriptedEngine(beam_script(who))
    solve(engine, context(engine, values=(0.4, 1.2), temperature={"ratios": [0.75, 0.25]}))
    for temps in by_beam(who, engine.calls[1]).values():
        assert sorted(temps) == [0.4, 0.4, 0.4, 1.2] and temps[0] == 0.4


def test_a_schedule_sets_the_temperature_of_each_depth():
    who = Who("beam_search", ["u0"])
    engine = ScriptedEngine(beam_script(who))
    schedule = {"schedule": "linear", "start": 1.5, "end": 0.5, "horizon": 2}
    ctx = context(engine, n=4, m=2, iterations=3, values=(0.4, 0.8), temperature=schedule)
    out = solve(engine, ctx)[0]
    assert [sorted({r.temperature for r in call}) for call in engine.calls] == [
        [0.6, 1.2],  # depth 0: factor 1.5
        [0.4, 0.8],  # depth 1: factor 1.0
        [0.2, 0.4],  # depth 2: factor 0.5
    ]
    # each depth deals its first value to the next slot (temperature.deal rotates them), so
    # the 2 slots of a beam get 0.4 / 0.8 at depth 0, 0.8 / 0.4 at depth 1, 0.4 / 0.8 at
    # depth 2. The surviving roots are j1 and j3 (scores 0.9, 0.8), both sampled at 0.8 x 1.5;
    # each keeps its depth-1 j0 (now 0.8 x 1.0, score 0.9); at depth 2 the j1 endings
    # (0.8 x 0.5, score 0.2) rank above the j0 ones (0.4 x 0.5, score 0.1)
    assert [[r.temperature for r in call] for call in engine.calls] == [
        [0.6, 1.2, 0.6, 1.2],
        [0.8, 0.4, 0.8, 0.4],
        [0.2, 0.4, 0.2, 0.4],
    ]
    assert [c.step_temperatures for c in out] == [[1.2, 0.8, 0.4]] * 2 + [[1.2, 0.8, 0.2]] * 2
    assert all(c.temperature is None for c in out)


def test_lookahead_scores_with_greedy_steps_that_are_not_kept():
    who = Who("beam_search", ["u0"])

    def script(request, i):
        if request.temperature == 0:  # lookahead: candidate j1 leads to a wrong step
            return step("oops [0.0]" if "root j1" in written(request) else "fine [0.7]")
        w = who(request)
        if not request.stop:
            return eos(f"end b{w.beam} j{w.j} [0.9]")
        return step(f"root j{w.j} [{ROOT_SCORES[w.j]}]")

    engine = ScriptedEngine(script)
    prm = TagPRM()
    out = solve(engine, context(engine, n=8, m=4, iterations=2, lookahead=1, prm=prm, agg="min"))
    _, look, last = engine.calls
    assert all(r.temperature == 0 and r.stop == (NL,) for r in look)
    assert len(look) == 8  # one greedy step per candidate
    # j1 (0.9) is sunk by its lookahead (min 0.0); j3 (0.8 -> 0.7) and j7 (0.6) survive
    assert [written(r) for r in last] == ["root j3 [0.8]\n"] * 4 + ["root j7 [0.6]\n"] * 4
    for c in out[0]:
        assert "fine" not in c.text and "oops" not in c.text  # lookahead text is never kept
        assert len(c.step_scores) == len(c.steps) == 2
    assert out[0][0].extra["lookahead_tokens"] == 16  # 8 greedy steps of 2 tokens


def test_lookahead_stops_at_the_end_of_a_solution():
    who = Who("beam_search", ["u0"])
    steps_seen = []

    def script(request, i):
        if request.temperature == 0:
            steps_seen.append(written(request))
            return eos("The answer is 1. [0.9]")
        return step(f"root j{who(request).j}") if request.stop else eos("end")

    engine = ScriptedEngine(script)
    solve(engine, context(engine, n=4, m=2, iterations=2, lookahead=3))
    # one lookahead round: every greedy continuation ended, so the next two rounds never ran
    assert len(engine.calls) == 3 and len(steps_seen) == 4


def test_duplicate_filtering_gives_the_slot_to_the_next_distinct_candidate():
    who = Who("beam_search", ["u0"])
    scores = [0.9, 0.9, 0.8, 0.1]

    def script(request, i):
        j = who(request).j
        if not request.stop:
            return eos("end")
        # j0 and j1 write the same step
        return step(f"same [{scores[j]}]" if j < 2 else f"root j{j} [{scores[j]}]")

    for dedupe, expected in (
        (False, {"same [0.9]\n"}),
        (True, {"same [0.9]\n", "root j2 [0.8]\n"}),
    ):
        engine = ScriptedEngine(script)
        solve(engine, context(engine, n=4, m=2, iterations=2, filter_duplicates=dedupe))
        assert {written(r) for r in engine.calls[1]} == expected


def test_stop_conditions_of_one_step():
    def script(request, i):
        kind = request.prompt.split("|")[1]
        retry = "blank" if request.seed != 100 else ""
        return {
            "eos": eos("The answer is 1.", 4),
            "cut": cut("1 + 1 = 2 and then", 30),
            "blank": step("", 1),
            "blank_once": step("after a blank line", 5) if retry else step("", 1),
            "budget": step("a step that fills the budget", 30),
            "step": step("1 + 1 = 2", 6),
            "final": eos("1 + 1 = 2\nThe answer is 2.", 9),
        }[kind]

    engine = ScriptedEngine(script)
    kinds = ["eos", "cut", "blank", "blank_once", "budget", "step", "final"]
    parent = Node(text="first\n", steps=("first",), step_temperatures=(0.5,), num_tokens=2)
    tasks = [
        StepTask(prompt=f"|{k}|", parent=parent, temperature=0.8, seed=100, final=k == "final")
        for k in kinds
    ]
    out = {k: e for k, e in zip(kinds, generate_steps(engine, tasks, Limits(NL, 32)))}
    assert {k: e.node.finish_reason for k, e in out.items()} == {
        "eos": "eos",
        "cut": "length",
        "blank": "empty_step",  # nothing but delimiters, BLANK_RETRIES times more
        "blank_once": None,  # a blank line, then a step: one step
        "budget": "length",  # ended at the delimiter with the budget spent: cannot grow
        "step": None,
        "final": "eos",
    }
    assert [r.max_tokens for r in engine.calls[0]] == [30] * 7  # the parent spent 2 of 32
    assert [r.stop for r in engine.calls[0]] == [(NL,)] * 6 + [()]
    # retries: one more call for the two blank ones, then for the still blank one
    assert [[r.prompt for r in call] for call in engine.calls[1:]] == [
        ["|blank|first\n\n", "|blank_once|first\n\n"],
        ["|blank|first\n\n\n"],
    ]
    assert len(engine.calls) == 1 + BLANK_RETRIES
    blank, once = out["blank"], out["blank_once"]
    assert blank.node.text == "first\n" + NL * (1 + BLANK_RETRIES) and blank.tokens == 3
    assert blank.node.steps == ("first",)
    assert once.node.text == "first\n\nafter a blank line\n" and once.tokens == 6
    assert once.node.steps == ("first", "after a blank line") and once.node.num_tokens == 8
    assert once.node.step_temperatures == (0.5, 0.8)
    final = out["final"].node
    assert final.steps == ("first", "1 + 1 = 2", "The answer is 2.")
    assert final.step_temperatures == (0.5, 0.8, 0.8) and final.depth == 1


def test_identical_greedy_requests_are_generated_once():
    engine = ScriptedEngine(lambda request, i: step("same"))
    tasks = [StepTask(prompt="p", parent=Node(), temperature=t, seed=s) for t, s in
             [(0.0, 1), (0.0, 2), (0.8, 3), (0.8, 4)]]  # fmt: skip
    out = generate_steps(engine, tasks, Limits(NL, 10))
    assert len(engine.calls[0]) == 3 and all(e.node.text == "same\n" for e in out)


def test_blank_steps_merge_into_the_next_step_and_every_token_counts():
    who = Who("beam_search", ["u0"])

    def script(request, i):
        w = who(request)
        if not request.stop:
            return eos("end", 1)
        if w.j % 2 == 0 and w.attempt == 0:
            return step("", 1)  # a blank line first
        return step(f"d{w.depth} j{w.j} [0.{w.j + 1}]", 3)

    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, n=4, m=2, iterations=3))[0]
    # every iteration but the last has a retry round for the blank ones
    assert [len(call) for call in engine.calls] == [4, 2, 4, 2, 4]
    for c in out:
        assert c.steps == split_steps(c.text, NL) and len(c.steps) == 3
        # two steps of 3 tokens, "end" of 1, one token per blank line in the text
        blank_lines = c.text.count(NL) - 2
        assert c.num_tokens == 3 + 3 + 1 + blank_lines
    assert {c.text.count(NL) for c in out} >= {3}  # some grew through a blank line
    # every token generated for the problem, pruned candidates and retries included
    assert all(c.extra["search_tokens"] == engine.stats.generated_tokens for c in out)


def test_the_context_limit_ends_a_candidate_like_the_token_budget():
    who = Who("beam_search", ["u0"])

    def script(request, i):
        if len(written(request)) > 10:
            return Generation("", 0, "length")  # what VLLMEngine returns for a full context
        return step(f"root j{who(request).j} long") if request.stop else eos("end")

    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, n=4, m=2, iterations=3))[0]
    assert all(c.finish_reason == "length" for c in out)


# ----------------------------------------------------------------- batching and reproducibility


def test_one_engine_call_and_one_prm_call_per_iteration_for_the_whole_batch():
    for approach in ("beam_search", "dvts"):
        engine = ScriptedEngine(random_script)
        ctx = context(engine, approach=approach, n=8, m=4, iterations=4)
        solve(engine, ctx, PROBLEMS)
        assert len(engine.calls) == 4 and ctx.prm.stats.calls == 4
        assert {problem_of(r.prompt) for r in engine.calls[0]} == {"p0", "p1", "p2"}


def random_script(request, i):
    """A seeded 'model': what it writes depends only on the request (prompt, seed, T)."""
    h = derive_seed(request.prompt, request.seed, request.temperature)
    if not request.stop or h % 7 == 0:
        return eos(f"{h % 10} + 1 = {h % 10 + 1 + h % 2}. The answer is {h % 3}.", 3 + h % 5)
    return step(f"{h % 10} + {h % 4} = {h % 10 + h % 4 + (h % 3 == 0)} [{h % 5}]", 2 + h % 4)


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
def test_a_problem_gets_the_same_completions_alone_or_in_a_batch(approach):
    def run(problems):
        engine = ScriptedEngine(random_script)
        ctx = context(
            engine, approach=approach, n=8, m=4, iterations=4, values=(0.4, 1.2), lookahead=1
        )
        return solve(engine, ctx, problems)

    together = run(PROBLEMS)
    for index, problem in enumerate(PROBLEMS):
        assert run([problem])[0] == together[index]
    assert together[0] != together[1]


# ----------------------------------------------------------------------------------------- DVTS


def dvts_script(who):
    def script(request, i):
        w = who(request)
        if not request.stop:
            return eos(f"end t{w.beam} j{w.j} [0.{w.j + 1}]")
        return step(f"d{w.depth} t{w.beam} j{w.j} [0.{(w.j + w.beam) % 4 + 1}]")

    return script


def test_dvts_subtrees_grow_independently_and_keep_their_best():
    who = Who("dvts", ["u0"])
    engine = ScriptedEngine(dvts_script(who))
    out = solve(engine, context(engine, approach="dvts", n=8, m=4, iterations=3))[0]
    assert len(engine.calls) == 3
    first, second, last = engine.calls
    assert [(who(r).beam, who(r).j) for r in first] == [(t, j) for t in range(2) for j in range(4)]
    # subtree t keeps the candidate scoring (j + t) % 4 + 1 highest: j = 3 - t
    assert [written(r) for r in second] == ["d0 t0 j3 [0.4]\n"] * 4 + ["d0 t1 j2 [0.4]\n"] * 4
    assert [written(r) for r in last] == ["d0 t0 j3 [0.4]\nd1 t0 j3 [0.4]\n"] * 4 + [
        "d0 t1 j2 [0.4]\nd1 t1 j2 [0.4]\n"
    ] * 4
    # m completions per subtree, from its last expansion, best first, sharing its group
    assert [c.group for c in out] == [0] * 4 + [1] * 4
    assert [c.text.rsplit(NL, 1)[1] for c in out[:4]] == [
        f"end t0 j{j} [0.{j + 1}]" for j in (3, 2, 1, 0)
    ]
    assert [c.extra["selected"] for c in out] == [True, False, False, False] * 2
    assert all(c.extra["subtree_tokens"] * 2 == c.extra["search_tokens"] for c in out)


def test_dvts_candidates_cycle_through_the_values_at_every_depth():
    who = Who("dvts", ["u0"])
    engine = ScriptedEngine(dvts_script(who))
    ctx = context(engine, approach="dvts", n=12, m=6, iterations=3, values=(0.2, 0.6, 1.0))
    out = solve(engine, ctx)[0]
    cycles = [[0.2, 0.6, 1.0] * 2, [0.6, 1.0, 0.2] * 2, [1.0, 0.2, 0.6] * 2]
    at = []  # (subtree, candidate) -> temperature, per depth
    for call in engine.calls:
        for temps in by_beam(who, call).values():
            assert temps in cycles  # m = 6 is a multiple of 3: each value twice, interleaved
        at.append({(who(r).beam, who(r).j): r.temperature for r in call})
    # subtree 0 keeps its j3 twice, then ranks the last expansion: j5 first
    assert out[0].step_temperatures == [at[0][0, 3], at[1][0, 3], at[2][0, 5]]
    assert [c.step_temperatures[-1] for c in out[:6]] == [at[2][0, j] for j in range(5, -1, -1)]


def test_a_subtree_does_not_depend_on_its_siblings():
    def run(script_for_t1):
        who = Who("dvts", ["u0"])
        base = dvts_script(who)

        def script(request, i):
            if who(request).beam == 1:
                return script_for_t1(request, i)
            return base(request, i)

        engine = ScriptedEngine(script)
        return solve(engine, context(engine, approach="dvts", n=8, m=4, iterations=3))[0]

    a = run(lambda r, i: eos("t1 ends at once [0.9]"))
    b = run(lambda r, i: step("t1 goes on [0.1]") if r.stop else eos("t1 end"))
    # subtree 0 is unchanged whatever subtree 1 does (the problem's totals differ, of course)
    for x, y in zip(a[:4], b[:4]):
        assert x.extra["search_tokens"] != y.extra["search_tokens"]
        for per_problem in ("search_tokens", "iterations", "sampled_temperatures", "allocations"):
            x.extra.pop(per_problem), y.extra.pop(per_problem)
        assert x == y
    assert [c.text for c in a[4:]] != [c.text for c in b[4:]]


def test_dvts_finished_only_fills_a_subtree_with_its_finished_candidates():
    who = Who("dvts", ["u0"])

    def script(request, i):
        t, j = who(request).beam, who(request).j
        if t == 0 and j == 1:
            return eos("t0 answer [0.9]")  # the best candidate ends the subtree
        if t == 0 and j == 2:
            return eos("t0 other answer [0.3]")
        if t == 1:  # subtree 1: the best one runs out of tokens
            return cut("t1 cut [0.9]", 50) if j == 0 else step(f"t1 j{j} [0.2]")
        return step(f"t{t} j{j} [0.5]")

    engine = ScriptedEngine(script)
    out = solve(engine, context(engine, approach="dvts", n=8, m=4, iterations=3, max_tokens=50))[0]
    assert len(engine.calls) == 1  # both subtrees ended at depth 0
    t0, t1 = out[:4], out[4:]
    assert [c.text for c in t0] == ["t0 answer [0.9]", "t0 other answer [0.3]"] * 2
    assert [c.extra.get("copy_of") for c in t0] == [None, None, 0, 1]
    assert all(c.finished and c.extra["dropped_unfinished"] == 2 for c in t0)
    # no finished candidate: the subtree keeps its last expansion, marked unfinished
    assert [c.finish_reason for c in t1] == ["length", "partial", "partial", "partial"]
    assert not any(c.finished for c in t1) and "dropped_unfinished" not in t1[0].extra
    assert t1[0].text == "t1 cut [0.9]" and t1[0].extra["selected"]

    engine = ScriptedEngine(script)
    ctx = context(engine, approach="dvts", n=8, m=4, iterations=3, max_tokens=50)
    ctx.approach.finished_only = False
    raw = solve(engine, ctx)[0]
    texts = [c.text for c in raw[:4]]
    # the two 0.5 siblings tie: their order is drawn at random
    assert texts[0] == "t0 answer [0.9]" and texts[3] == "t0 other answer [0.3]"
    assert sorted(texts[1:3]) == ["t0 j0 [0.5]\n", "t0 j3 [0.5]\n"]


def test_dvts_with_beam_width_one_samples_n_independent_step_by_step_solutions():
    engine = ScriptedEngine(random_script)
    schedule = {"schedule": "switch", "start": 1.5, "end": 0.5, "switch_at": 1}
    ctx = context(engine, approach="dvts", n=4, m=1, iterations=4, temperature=schedule)
    out = solve(engine, ctx)[0]
    assert [c.group for c in out] == [0, 1, 2, 3]
    assert any(len(c.steps) > 1 for c in out)
    for c in out:
        assert c.step_temperatures[:1] == [1.2] and set(c.step_temperatures[1:]) <= {0.4}
