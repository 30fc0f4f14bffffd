"""The run loop on a scripted engine: run directory contents, checkpoints and resume."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter

import pytest
import yaml
from fakes import ScriptedEngine, continuing, half_right, problem_of

import hotncold.engine.vllm_engine
import hotncold.experiment.run
from hotncold.config import (
    ApproachConfig,
    Config,
    ConfigError,
    DatasetConfig,
    ModelConfig,
    TemperatureConfig,
)
from hotncold.data import load_problems
from hotncold.data.arithmetic import generate
from hotncold.experiment.run import execute

ANSWERS = {r["problem"]: r["answer"] for r in generate(4)}
solver = half_right(ANSWERS)  # every other sample right (test_hub and others import it)


@pytest.fixture
def engine(monkeypatch):
    fake = ScriptedEngine(solver)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: fake)
    return fake


def config(tmp_path, **kw) -> Config:
    return Config(
        out_dir=str(tmp_path / "run"), n=4, batch_size=5, dataset=DatasetConfig(per_level=4), **kw
    )


def test_run_writes_a_complete_run_directory(tmp_path, engine):
    metrics = execute(config(tmp_path))
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "completions.jsonl",
        "metrics.json",
        "run.json",
        "run.log",
    }
    records = [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]
    assert len(records) == 20 and len(engine.calls) == 4  # 20 problems in batches of 5
    c = records[0]["completions"][0]
    assert set(c) >= {
        "text",
        "steps",
        "step_scores",
        "step_temperatures",
        "temperature",
        "num_tokens",
        "answer",
        "correct",
        "score",
        "cluster",
        "finished",
    }
    assert records[0]["problem"]["level"] == 1 and records[0]["prompt"].startswith("<system>")
    # the PRM rejects the false claim: naive selection is always right, pass@1 is 1/2
    assert metrics["overall"]["naive"]["4"] == 1.0
    assert metrics["overall"]["pass"]["1"] == pytest.approx(0.5)
    assert metrics["overall"]["majority"]["4"] == pytest.approx(0.5, abs=0.05)
    assert set(metrics["by_level"]) == {"1", "2", "3", "4", "5"}
    assert len(metrics["per_problem"]) == 20
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["problems"] == {"total": 20, "done": 20}
    assert info["totals"]["engine_calls"] == 4 and info["totals"]["prm_calls"] == 4
    assert info["totals"]["generated_tokens"] == engine.stats.generated_tokens
    assert "hydra-core" in info["sessions"][0]["packages"]
    assert yaml.safe_load((run / "config.yaml").read_text())["n"] == 4
    log = (run / "run.log").read_text()
    assert re.search(r"done:\n\S+ T\S+ n=4: 20 problems in ", log)  # the results table follows


def test_interrupted_run_resumes_without_redoing_finished_problems(tmp_path, engine):
    calls = {"n": 0}
    original = engine.generate

    def dies_on_third_batch(requests):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(requests)

    engine.generate = dies_on_third_batch
    with pytest.raises(KeyboardInterrupt):
        execute(config(tmp_path))
    run = tmp_path / "run"
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted" and info["problems"]["done"] == 10
    assert len((run / "completions.jsonl").read_text().splitlines()) == 10
    first_ten = (run / "completions.jsonl").read_text()

    engine.generate = original
    engine.calls.clear()
    execute(config(tmp_path))
    assert len(engine.calls) == 2  # only the 10 unfinished problems
    text = (run / "completions.jsonl").read_text()
    assert text.startswith(first_ten) and len(text.splitlines()) == 20
    info = json.loads((run / "run.json").read_text())
    assert [s["status"] for s in info["sessions"]] == ["interrupted", "finished"]

    engine.calls.clear()
    execute(config(tmp_path))  # a finished run reruns as a no-op
    assert engine.calls == []


def test_same_seed_same_requests_different_seed_different_requests(tmp_path, engine):
    execute(config(tmp_path))
    seeds = [r.seed for call in engine.calls for r in call]
    engine.calls.clear()
    execute(config(tmp_path / "again"))
    assert [r.seed for call in engine.calls for r in call] == seeds
    engine.calls.clear()
    execute(config(tmp_path / "other", seed=1))
    assert not set(r.seed for call in engine.calls for r in call) & set(seeds)


def test_multi_temperature_run_records_each_completion_temperature(tmp_path, engine):
    execute(config(tmp_path, temperature=TemperatureConfig(values=[0.4, 1.2])))
    record = json.loads((tmp_path / "run" / "completions.jsonl").read_text().splitlines()[0])
    # interleaved, starting at the problem's rotation
    assert [c["temperature"] for c in record["completions"]] in ([0.4, 1.2] * 2, [1.2, 0.4] * 2)
    assert record["completions"][0]["extra"]["sampled_temperatures"] == {"0.4": 2, "1.2": 2}


def test_run_json_records_the_realised_temperature_shares(tmp_path, engine):
    # 20 problems x n=4 over three values: 2/1/1 per problem, the double one rotating
    execute(config(tmp_path, temperature=TemperatureConfig(values=[0.4, 0.8, 1.2])))
    run = tmp_path / "run"
    info = json.loads((run / "run.json").read_text())
    shares = info["temperature_shares"]
    assert info["results_version"] == 2
    assert shares["nominal"] == {"0.4": 0.333333, "0.8": 0.333333, "1.2": 0.333333}
    counts = shares["sampled"]["counts"]
    assert sum(counts.values()) == 80 and shares["allocations"] == 20
    records = [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]
    per_problem = [r["completions"][0]["extra"]["sampled_temperatures"] for r in records]
    assert all(sorted(p.values()) == [1, 1, 2] for p in per_problem)
    # the rotation gives the double share to every value, not always to 0.4
    assert {max(p, key=p.get) for p in per_problem} == {"0.4", "0.8", "1.2"}
    assert counts == {t: sum(p[t] for p in per_problem) for t in ("0.4", "0.8", "1.2")}
    # Best-of-N: one step per line of text, each at its sample's temperature
    steps = Counter(
        f"{t:g}" for r in records for c in r["completions"] for t in c["step_temperatures"]
    )
    assert shares["completion_steps"]["counts"] == dict(steps)


def test_a_run_directory_of_an_older_results_version_is_not_resumed(tmp_path, engine):
    execute(config(tmp_path))
    run = tmp_path / "run"
    info = json.loads((run / "run.json").read_text())
    del info["results_version"]  # what runs before results version 2 wrote
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="results version 1, computed differently"):
        execute(config(tmp_path))


# Beam search and DVTS under the async scheduler run as a window over the run's problems
# (`run.solve_in_groups`, `schedule.window`): more than a batch open, each problem recorded as
# it ends, the finished file in problem order.


def steps_of(written: str, request, i: int) -> str:
    """For `continuing`: a solution of 1-3 checked steps (as many as the problem's length
    says, so problems end at different iterations) after a first step the seed picks."""
    text = problem_of(request.prompt)
    answer = ANSWERS[text]
    first = written.split("\n", 1)[0] if written else f"Try {request.seed % 5}: {answer} = {answer}"
    rest = "".join(f"{answer} + 0 = {answer}\n" for _ in range(1 + len(text) % 3))
    return f"{first}\n{rest}The answer is {answer}."


@pytest.fixture
def step_engine(monkeypatch):
    fake = ScriptedEngine(continuing(steps_of), honor_stops=True)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: fake)
    return fake


def search_config(tmp_path, name="run", approach="beam_search", **kw) -> Config:
    fields = {"scheduler": "async", "open_batches": 3} | kw.pop("approach_fields", {})
    return Config(
        out_dir=str(tmp_path / name),
        n=4,
        dataset=DatasetConfig(per_level=4),
        model=ModelConfig(step_delimiter="\n", max_tokens=60),
        approach=ApproachConfig(name=approach, beam_width=2, num_iterations=5, **fields),
        **kw,
    )


def records_of(run) -> dict:
    lines = (run / "completions.jsonl").read_text().splitlines()
    return {r["uid"]: r for r in map(json.loads, lines)}


def open_accounts(engine):
    """Wrap `engine.submit` to record how many problems had requests in flight at each call."""
    owner: dict[int, str] = {}
    seen: list[int] = []
    submit = engine.submit

    def watched(requests):
        tickets = submit(requests)
        owner.update(zip(tickets, (r.account for r in requests)))
        seen.append(len({owner[t] for t, _ in engine.in_flight}))
        return tickets

    engine.submit = watched
    return seen


@pytest.mark.parametrize("approach", ["beam_search", "dvts"])
def test_a_windowed_run_records_what_a_barrier_run_of_one_batch_records(
    tmp_path, step_engine, approach
):
    execute(
        search_config(
            tmp_path, "barrier", approach, batch_size=20, approach_fields={"scheduler": "barrier"}
        )
    )
    seen = open_accounts(step_engine)
    execute(search_config(tmp_path, "window", approach, batch_size=2))
    barrier, window = records_of(tmp_path / "barrier"), records_of(tmp_path / "window")
    assert window == barrier  # texts, scores, choices and each problem's compute
    # more than a batch of 2 problems in flight at once, never more than open_batches=3 batches
    # (the 8 samples in flight the window allows hold it at 3 here)
    assert 2 < max(seen) <= 6
    # recorded as each problem ended, then put in problem order once all had
    assert (
        list(window) == list(barrier) == [p.uid for p in load_problems(DatasetConfig(per_level=4))]
    )
    info = json.loads((tmp_path / "window" / "run.json").read_text())
    assert info["status"] == "finished" and info["problems"]["done"] == 20


def test_an_interrupted_windowed_run_keeps_every_problem_that_ended_and_resumes(
    tmp_path, step_engine
):
    execute(search_config(tmp_path, "whole", batch_size=2))
    submit, calls = step_engine.submit, {"n": 0}

    def dies_on_the_twentieth(requests):
        calls["n"] += 1
        if calls["n"] == 20:
            raise KeyboardInterrupt
        return submit(requests)

    step_engine.submit = dies_on_the_twentieth
    with pytest.raises(KeyboardInterrupt):
        execute(search_config(tmp_path, batch_size=2))
    assert not step_engine.in_flight  # the window aborted what was in flight
    run = tmp_path / "run"
    info = json.loads((run / "run.json").read_text())
    kept = records_of(run)
    assert info["status"] == "interrupted" and info["problems"]["done"] == len(kept)
    assert 0 < len(kept) < 20 and len(kept) % 2  # per problem, not per batch of 2
    order = [p.uid for p in load_problems(DatasetConfig(per_level=4))]
    assert list(kept) != order[: len(kept)]  # in the order they ended
    step_engine.submit = submit
    execute(search_config(tmp_path, batch_size=2))
    resumed, whole = records_of(run), records_of(tmp_path / "whole")
    assert resumed == whole and list(resumed) == list(whole) == order  # the same file
    # byte for byte: the resumed run's file is the uninterrupted run's
    assert (run / "completions.jsonl").read_text() == (
        tmp_path / "whole" / "completions.jsonl"
    ).read_text()


def test_problems_open_together_with_one_text_share_its_prm_charge(tmp_path, monkeypatch):
    twice = [
        p for p in load_problems(DatasetConfig(per_level=2)) for _ in range(2)
    ]  # each text twice, in a row
    twice = [dataclasses.replace(p, uid=f"{p.uid}-{k % 2}") for k, p in enumerate(twice)]
    monkeypatch.setattr(hotncold.experiment.run, "load_problems", lambda cfg: twice)
    fake = ScriptedEngine(continuing(steps_of), honor_stops=True)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: fake)
    execute(search_config(tmp_path, batch_size=2))
    records = records_of(tmp_path / "run")
    assert len(records) == len(twice)
    steps = [records[p.uid]["compute"]["prm_steps_scored"] for p in twice]
    for a, b in zip(steps[::2], steps[1::2]):  # open together: the text's charge split evenly
        assert abs(a - b) <= 1 and a + b > 0


@pytest.mark.parametrize(
    ("approach", "scheduler", "prompts"),
    [
        ("beam_search", "async", 6),
        ("dvts", "async", 6),
        ("beam_search", "barrier", 2),
        ("best_of_n", "async", 2),
    ],
)
def test_the_kv_cache_is_sized_for_the_problems_a_run_may_have_open(
    tmp_path, step_engine, monkeypatch, approach, scheduler, prompts
):
    sized = []
    real = hotncold.experiment.run.registry.sized_for_batch

    def watched(model, prm, batch):
        sized.append(batch)
        return real(model, prm, batch)

    monkeypatch.setattr(hotncold.experiment.run.registry, "sized_for_batch", watched)
    fields = {"scheduler": scheduler}
    execute(search_config(tmp_path, approach=approach, batch_size=2, approach_fields=fields))
    # open_batches=3 batches of 2 under the window; otherwise one batch
    assert [(b.problems, b.open_problems) for b in sized] == [(2, prompts)]
