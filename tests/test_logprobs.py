"""Stored per-token log-probabilities (`output.logprobs`): what the engine returns, what the
approaches keep, and self-certainty computed from them offline by `rescore`."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re

import pytest
from conftest import tiny_model_config
from fakes import ScriptedEngine
from test_run import solver
from test_search import Who, beam_script, context, solve, step

import hotncold.engine.vllm_engine
from hotncold.config import (
    ApproachConfig,
    Config,
    DatasetConfig,
    ModelConfig,
    OutputConfig,
    RescoreConfig,
)
from hotncold.engine.requests import Generation
from hotncold.engine.vllm_engine import token_ends
from hotncold.experiment.naming import run_name
from hotncold.experiment.rescore import rescore
from hotncold.experiment.run import execute
from hotncold.prm.registry import prm_config
from hotncold.prm.self_certainty import stored_step_scores


def with_logprobs(script):
    """The script's generations, each piece of text (a word or a run of spaces) one token
    with log-probability -len(piece)/10, when the request asks for log-probabilities."""

    def run(request, i):
        g = script(request, i)
        if isinstance(g, str):
            g = Generation(text=g, num_tokens=len(g.split()), finish_reason="stop")
        if not request.logprobs:
            return g
        pieces = re.findall(r"\S+|\s+", g.text)
        return dataclasses.replace(
            g,
            num_tokens=len(pieces),
            token_logprobs=[-len(p) / 10 for p in pieces],
            token_ends=list(itertools.accumulate(len(p) for p in pieces)),
        )

    return run


def test_token_ends_follow_the_decoded_pieces():
    assert token_ends(["a", " b", "\n\n"], "a b\n\n") == [1, 3, 5]
    # a stop string that ended the text inside a token; the end-of-sequence token adds nothing
    assert token_ends(["x", "y\n\nz", "</s>"], "xy\n\n") == [1, 4, 4]
    assert token_ends(["caf", "\ufffd"], "café") is None  # a character split across tokens


def test_stored_self_certainty_by_hand():
    text = "a b\n\nc d"
    # tokens "a", " b", "\n\n", "c", " d", end-of-sequence
    logprobs = [-1.0, -0.5, -0.2, -0.3, -0.1, -0.05]
    ends = [1, 3, 5, 6, 8, 8]
    scores = stored_step_scores(text, ["a b", "c d"], logprobs, ends)
    # step 1 owns "a" and " b"; the delimiter opens step 2 with "c" and " d"; EOS counts nowhere
    assert scores == pytest.approx([math.exp(-0.75), math.exp(-0.2)])
    assert stored_step_scores("", [], [], []) == []
    assert stored_step_scores("a", ["a"], [], []) == [1.0]  # nothing of its own: neutral


def test_beam_search_keeps_every_kept_tokens_logprob_and_no_lookahead():
    who = Who("beam_search", ["u0"])

    def script(request, i):
        if request.temperature == 0:  # lookahead: greedy steps that only feed scoring
            return step("greedy look [0.5]")
        return beam_script(who)(request, i)

    engine = ScriptedEngine(with_logprobs(script))
    ctx = dataclasses.replace(context(engine, n=8, m=4, iterations=3, lookahead=1), logprobs=True)
    out = solve(engine, ctx)
    assert all(r.logprobs == (r.temperature != 0) for call in engine.calls for r in call)
    for c in out[0]:
        assert len(c.token_logprobs) == len(c.token_ends) == c.num_tokens
        begins = [0, *c.token_ends[:-1]]
        assert c.token_ends[-1] == len(c.text) and "greedy" not in c.text
        for begin, end, lp in zip(begins, c.token_ends, c.token_logprobs):
            assert lp == pytest.approx(-(end - begin) / 10)  # each token's own piece
        assert c.to_json()["token_logprobs"] == c.token_logprobs
    # without output.logprobs nothing is asked for or stored
    plain = ScriptedEngine(with_logprobs(script))
    out = solve(plain, context(plain, n=8, m=4, iterations=3))
    assert not any(r.logprobs for call in plain.calls for r in call)
    assert "token_logprobs" not in out[0][0].to_json() and "token_ends" not in out[0][0].to_json()


def test_a_run_that_stored_logprobs_is_rescored_by_self_certainty_without_an_engine(
    tmp_path, monkeypatch
):
    engine = ScriptedEngine(with_logprobs(solver))
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: engine)
    cfg = Config(
        out_dir=str(tmp_path / "sweep" / "src"),
        n=4,
        model=ModelConfig(step_delimiter="\n"),  # two steps a solution (see test_run.solver)
        dataset=DatasetConfig(per_level=1),
        approach=ApproachConfig(name="best_of_n"),
        output=OutputConfig(logprobs=True),
    )
    cfg.run_name = run_name(dataclasses.asdict(cfg))
    execute(cfg)
    assert run_name(dataclasses.asdict(dataclasses.replace(cfg, output=OutputConfig()))) == (
        cfg.run_name
    )  # storing them changes no run name
    src = [json.loads(x) for x in (tmp_path / "sweep" / "src" / "completions.jsonl").open()]
    for c in (c for r in src for c in r["completions"]):
        assert len(c["token_logprobs"]) == len(c["token_ends"]) == c["num_tokens"]

    def no_engine(cfg):
        raise AssertionError("self_certainty from stored logprobs needs no engine")

    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", no_engine)
    scorer = prm_config("self_certainty", agg_strategy="mean")  # as its option sets it
    [job] = rescore(tmp_path / "sweep", RescoreConfig(prm=scorer))
    new = [json.loads(x) for x in (job.rundir.path / "completions.jsonl").open()]
    for a, b in zip(src, new):
        for ca, cb in zip(a["completions"], b["completions"]):
            expected = stored_step_scores(
                ca["text"], ca["steps"], ca["token_logprobs"], ca["token_ends"]
            )
            assert cb["step_scores"] == expected and len(expected) == len(ca["steps"]) == 2
            assert cb["score"] == pytest.approx(sum(expected) / len(expected))  # agg mean
    info = json.loads((job.rundir.path / "run.json").read_text())
    assert info["scored_from"] == "stored logprobs"
    assert info["totals"]["prm_tokens"] == 0 and info["totals"]["prm_flops"] == 0


@pytest.mark.slow
def test_real_logprobs_are_stored_and_agree_with_self_certainty_through_the_engine(
    real_engine, tmp_path
):
    model = tiny_model_config(ModelConfig)
    model.max_tokens = 48
    cfg = Config(
        out_dir=str(tmp_path / "src"),
        n=2,
        model=model,
        dataset=DatasetConfig(per_level=1, levels=[1, 2, 3]),
        output=OutputConfig(logprobs=True),
    )
    cfg.run_name = run_name(dataclasses.asdict(cfg))
    execute(cfg)
    src = [json.loads(x) for x in (tmp_path / "src" / "completions.jsonl").open()]
    for c in (c for r in src for c in r["completions"]):
        assert len(c["token_logprobs"]) == len(c["token_ends"]) == c["num_tokens"] > 0
        assert all(lp <= 0 for lp in c["token_logprobs"])
        assert c["token_ends"] == sorted(c["token_ends"]) and c["token_ends"][-1] == len(c["text"])
    stored = rescore(tmp_path / "src", RescoreConfig(prm=prm_config("self_certainty")))[0]
    # the same run without its stored logprobs: self-certainty read through the engine
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("config.yaml", "run.json"):
        (plain / name).write_text((tmp_path / "src" / name).read_text())
    with open(plain / "completions.jsonl", "w") as f:
        for r in src:
            for c in r["completions"]:
                del c["token_logprobs"], c["token_ends"]
            f.write(json.dumps(r) + "\n")
    via_engine = RescoreConfig(prm=prm_config("self_certainty"), out_dir=str(tmp_path / "via"))
    engine = rescore(plain, via_engine)[0]
    assert json.loads((stored.rundir.path / "run.json").read_text())["scored_from"] == (
        "stored logprobs"
    )
    assert json.loads((engine.rundir.path / "run.json").read_text())["scored_from"] == "engine"
    a = [json.loads(x) for x in (stored.rundir.path / "completions.jsonl").open()]
    b = [json.loads(x) for x in (engine.rundir.path / "completions.jsonl").open()]
    diffs = [
        abs(x - y)
        for ra, rb in zip(a, b)
        for ca, cb in zip(ra["completions"], rb["completions"])
        for x, y in zip(ca["step_scores"], cb["step_scores"])
    ]
    assert len(diffs) >= 6
    # the same model's temperature-1 probabilities of the same text: most steps tokenize the
    # same both ways and agree to float precision; boundaries may split differently
    assert sorted(diffs)[len(diffs) // 2] < 1e-3
