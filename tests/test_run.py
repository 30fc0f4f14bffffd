"""The run loop on a scripted engine: run directory contents, checkpoints and resume."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import yaml
from fakes import ScriptedEngine, half_right

import hotncold.engine.vllm_engine
from hotncold.config import Config, ConfigError, DatasetConfig, TemperatureConfig
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
