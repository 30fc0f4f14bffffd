"""Sweep bookkeeping on a scripted engine: status of every job, resubmission, shard merging.

The sweep folders are made by hotncold itself: Hydra runs the sweep in this process (what
`python -m hotncold -m ...` does, through Hydra's basic launcher), the scripted engine answers,
and some jobs are made to fail, to be stopped by SIGTERM, or never to start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_module, sweep_in_process
from fakes import ScriptedEngine, problem_of

import hotncold.config.hydra  # registers the schema and resolvers
import hotncold.engine.vllm_engine
from hotncold import merge, status
from hotncold.analyze import AnalysisError, collect
from hotncold.cluster import shards, sweep_status
from hotncold.config import Config, ConfigError, DatasetConfig
from hotncold.data.arithmetic import generate
from hotncold.experiment import lock
from hotncold.experiment.naming import run_name
from hotncold.experiment.run import execute
from hotncold.experiment.rundir import append_jsonl, read_json, write_json

ANSWERS = {r["problem"]: r["answer"] for seed in (0, 1) for r in generate(4, seed=seed)}


def answer(request, i):
    right = ANSWERS[problem_of(request.prompt)]
    return f"{right} + 0 = {right}\nThe answer is {right}." if i % 2 == 0 else "1 + 1 = 3"


@pytest.fixture(autouse=True)
def fresh_hydra():
    """Sweeps here set up Hydra's global state in this process; leave it as found."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


@pytest.fixture
def engine(monkeypatch):
    fake = ScriptedEngine(answer)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: fake)
    return fake


def sweep(monkeypatch, *args: str) -> None:
    """`python -m hotncold -m ARGS`, in this process (Hydra's basic launcher)."""
    sweep_in_process(*args)


SWEEP = ["dataset.per_level=1", "n=2", "batch_size=2"]  # 5 problems per job, 3 batches


def by_temperature(report: sweep_status.SweepStatus) -> dict[str, sweep_status.JobReport]:
    return {next(o for o in j.overrides if o.startswith("temperature=")): j for j in report.jobs}


def test_status_finds_done_failed_partial_and_missing_jobs_and_resubmit_finishes_them(
    tmp_path, monkeypatch, engine
):
    folder = tmp_path / "sweep"
    calls: dict[float, int] = {}
    healthy = engine.generate

    def troubled(requests):
        t = requests[0].temperature
        calls[t] = calls.get(t, 0) + 1
        if t == 0.8 and calls[t] == 2:
            raise RuntimeError("boom: the engine broke")
        if t == 1.2 and calls[t] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as scancel does; the run notes it and stops
        return healthy(requests)

    engine.generate = troubled
    with pytest.raises(SystemExit):  # the SIGTERM stops the sweep: greedy never starts
        sweep(
            monkeypatch, "temperature=cold,default,hot,greedy", *SWEEP, f"hydra.sweep.dir={folder}"
        )

    report = sweep_status.sweep_status(folder)
    assert report.launcher == "local" and len(report.jobs) == 4
    jobs = by_temperature(report)
    cold, default, hot, greedy = (
        jobs[f"temperature={t}"] for t in ("cold", "default", "hot", "greedy")
    )
    assert (cold.state, cold.done, cold.total) == ("done", 5, 5)
    assert (default.state, default.done) == ("failed", 2)
    assert default.note == "RuntimeError: boom: the engine broke"
    assert (hot.state, hot.done, hot.total) == ("partial", 2, 5)
    assert hot.note.startswith("SIGTERM received; then SystemExit")
    assert (greedy.state, greedy.run_dir, greedy.note) == ("missing", None, "never started")
    text = sweep_status.format_status(report)
    assert "1 done, 1 partial, 1 failed, 1 missing" in text and "--resubmit" in text
    hot_dir = Path(hot.run_dir)
    kept = (hot_dir / "completions.jsonl").read_text()

    engine.generate = healthy
    engine.calls.clear()
    assert status.main([str(folder), "--resubmit"]) == 0
    # exactly the three unfinished jobs ran again, and only their unfinished problems
    assert len(engine.calls) == 2 + 2 + 3  # default 3 left, hot 3 left (2 batches each), greedy
    assert all(j.state == "done" for j in sweep_status.sweep_status(folder).jobs)
    assert len(read_json(Path(cold.run_dir) / "run.json")["sessions"]) == 1
    hot_info = read_json(hot_dir / "run.json")
    assert [s["status"] for s in hot_info["sessions"]] == ["interrupted", "finished"]
    assert (hot_dir / "completions.jsonl").read_text().startswith(kept)
    assert hot_info["overrides"] == list(hot.overrides)
    # multirun.yaml still describes the whole sweep
    assert len(sweep_status.sweep_status(folder).jobs) == 4
    assert status.main([str(folder), "--resubmit"]) == 0  # nothing left: a no-op
    assert len(engine.calls) == 7


def test_status_tells_running_from_vanished_processes(tmp_path, monkeypatch, engine):
    folder = tmp_path / "sweep"
    sweep(monkeypatch, "seed=0,1", *SWEEP, f"hydra.sweep.dir={folder}")
    first, second = (Path(j.run_dir) for j in sweep_status.sweep_status(folder).jobs)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    for run, pid in ((first, os.getpid()), (second, int(dead.stdout))):
        info = read_json(run / "run.json")
        info["status"] = info["sessions"][-1]["status"] = "running"
        info["sessions"][-1]["pid"] = pid
        info["problems"]["done"] = 3
        write_json(run / "run.json", info)
    held = lock.acquire(first, "run")  # a live run holds its directory's lock
    jobs = sweep_status.sweep_status(folder).jobs
    assert [j.state for j in jobs] == ["running", "partial"]
    assert jobs[1].note == "stopped without a word (killed?)"
    assert [j.overrides for j in sweep_status.sweep_status(folder).unfinished] == [
        jobs[1].overrides
    ]
    # its lock free, a run is gone even when its pid now names a live process (a reused pid)
    held.release()
    assert [j.state for j in sweep_status.sweep_status(folder).jobs] == ["partial", "partial"]
    # a run from before locks (no lock in its session) is judged by its pid
    info = read_json(first / "run.json")
    del info["sessions"][-1]["lock"]
    write_json(first / "run.json", info)
    assert [j.state for j in sweep_status.sweep_status(folder).jobs] == ["running", "partial"]
    # a job the (basic launcher's) sweep process has not reached yet is waiting, not missing
    shutil.rmtree(second)
    jobs = sweep_status.sweep_status(folder).jobs
    assert [j.state for j in jobs] == ["running", "queued"]
    assert sweep_status.sweep_status(folder).unfinished == []


def test_status_refuses_a_folder_that_is_not_a_sweep(tmp_path):
    assert status.main([str(tmp_path)]) == 2
    with pytest.raises(ConfigError, match=r"no multirun\.yaml"):
        sweep_status.sweep_status(tmp_path)


def test_resubmission_takes_only_launcher_settings(tmp_path, monkeypatch, engine):
    from hotncold.cluster.sweep import relaunch

    folder = tmp_path / "sweep"
    sweep(monkeypatch, "seed=0,1", *SWEEP, f"hydra.sweep.dir={folder}")
    with pytest.raises(ConfigError, match="only takes launcher settings"):
        relaunch(folder, [("seed=0",)], ["n=4"])


# ---- merging shards ---------------------------------------------------------------------


def shard_config(folder: Path, k: int, i: int, **dataset) -> Config:
    cfg = Config(
        n=4, batch_size=3, dataset=DatasetConfig(per_level=4, num_shards=k, shard=i, **dataset)
    )
    cfg.out_dir = str(folder / run_name(dataclasses.asdict(cfg)))
    return cfg


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]


def test_merged_shards_equal_the_unsharded_run(tmp_path, engine):
    folder = tmp_path / "sweep"
    for i in range(3):
        execute(shard_config(folder, 3, i))
    whole = shard_config(tmp_path / "whole", 1, 0)
    whole_metrics = execute(whole)
    assert merge.main([str(folder)]) == 0
    merged = folder / "merged" / Path(whole.out_dir).name  # named as the unsharded run
    assert records(merged) == records(Path(whole.out_dir))  # all 20 problems, dataset order
    assert read_json(merged / "metrics.json") == whole_metrics
    info = read_json(merged / "run.json")
    assert info["status"] == "finished" and info["problems"] == {"total": 20, "done": 20}
    assert [s["problems"] for s in info["merged_from"]] == [7, 7, 6]
    assert info["totals"]["engine_calls"] == 3 + 3 + 2  # batches of 3 problems per shard
    assert merge.main([str(folder)]) == 0  # merging again rewrites the same result


def test_merge_command_writes_where_out_says(tmp_path, engine):
    folder = tmp_path / "sweep"
    for i in range(2):
        execute(shard_config(folder, 2, i))
    whole = shard_config(tmp_path / "whole", 1, 0)
    execute(whole)
    out = tmp_path / "elsewhere" / "merged runs"
    proc = run_module("hotncold.merge", str(folder), "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = Path(whole.out_dir).name
    assert proc.stdout.splitlines()[-1] == f"merged 2 shards, 20 problems -> {out / name}"
    assert sorted(p.name for p in out.iterdir()) == [name]
    assert records(out / name) == records(Path(whole.out_dir))
    assert read_json(out / name / "run.json")["status"] == "finished"
    assert not (folder / "merged").exists()  # nothing written into the sweep


def test_merge_refuses_missing_and_partial_shards_and_names_them(tmp_path, engine, capsys):
    folder = tmp_path / "sweep"
    for i in (0, 2):
        execute(shard_config(folder, 3, i))
    stopped = shard_config(folder, 3, 1)
    healthy, calls = engine.generate, []

    def dies_on_second_batch(requests):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return healthy(requests)

    engine.generate = dies_on_second_batch
    with pytest.raises(KeyboardInterrupt):
        execute(stopped)
    engine.generate = healthy
    # another configuration of the same sweep lost a whole shard
    for i in (0, 1):
        execute(shard_config(folder, 3, i, generator_seed=1))

    assert merge.main([str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"shard 1: 3 of 7 problems (interrupted) in {stopped.out_dir}" in err
    lost = Path(shard_config(folder, 3, 2, generator_seed=1).out_dir).name
    assert f"shard 2: no run folder ({lost})" in err
    assert "--allow-incomplete" in err
    assert not (folder / "merged").exists()

    assert merge.main([str(folder), "--allow-incomplete"]) == 1
    groups = shards.find_groups(folder, exclude=folder / "merged")
    for group in groups:
        info = read_json(folder / "merged" / group.name / "run.json")
        assert info["status"] == "incomplete"
        assert info["problems"]["total"] == 20
        assert len(info["missing"]["uids"]) == 20 - info["problems"]["done"]
    done = sorted(
        read_json(folder / "merged" / g.name / "run.json")["problems"]["done"] for g in groups
    )
    assert done == [7 + 7, 7 + 3 + 6]

    execute(stopped)  # finish the interrupted shard: that group now merges complete
    groups = shards.merge_sweep(folder)
    assert sorted(g.complete for g in groups) == [False, True]


def test_a_second_merge_into_the_same_folder_is_refused_in_one_line(tmp_path, engine, capsys):
    folder = tmp_path / "sweep"
    for i in range(2):
        execute(shard_config(folder, 2, i))
    [group] = shards.find_groups(folder)
    capsys.readouterr()
    with lock.locked(tmp_path / "out" / group.name, "merge"):  # another merge is writing there
        assert merge.main([str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is in use by" in err and "(merge since" in err
    assert not (tmp_path / "out" / group.name / "run.json").exists()
    assert merge.main([str(folder), "--out", str(tmp_path / "out")]) == 0


def test_merge_refuses_a_problem_that_appears_twice(tmp_path, engine):
    folder = tmp_path / "sweep"
    for i in range(2):
        execute(shard_config(folder, 2, i))
    first = Path(shard_config(folder, 2, 0).out_dir)
    second = Path(shard_config(folder, 2, 1).out_dir)
    append_jsonl(second / "completions.jsonl", records(first)[:1])
    with pytest.raises(ConfigError, match="appears twice"):
        shards.merge_sweep(folder)
    assert merge.main([str(folder)]) == 2


def test_merge_and_status_run_as_modules(tmp_path):
    for module in ("hotncold.merge", "hotncold.status"):
        proc = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT
        )
        assert proc.returncode == 0 and "sweep_dir" in proc.stdout


def test_a_merged_run_is_named_as_hydra_names_the_unsharded_run():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hotncold.experiment.run import to_config

    def composed(*overrides: str):
        with initialize_config_dir(config_dir=str(ROOT / "hotncold" / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=["out_dir=x", "overrides=[]", *overrides])
        return cfg

    args = ["temperature=multi", "n=6", "dataset.levels=[1,2]"]
    shard = composed(*args, "dataset.num_shards=3", "dataset.shard=1")
    cfg = to_config(OmegaConf.masked_copy(shard, [k for k in shard if k != "hydra"]))
    cfg.dataset.num_shards, cfg.dataset.shard = 1, 0
    assert "-shard1of3_" in shard.run_name
    assert run_name(dataclasses.asdict(cfg)) == composed(*args).run_name


# ---- readers while a run writes -----------------------------------------------------------


def test_status_reports_a_locked_run_as_running_whatever_run_json_says(
    tmp_path, monkeypatch, engine
):
    """A rerun holds the lock before it writes its session: run.json still tells of the killed
    session, and without the lock status would call the run partial (and invite a resubmit)."""
    folder = tmp_path / "sweep"
    sweep(monkeypatch, "seed=0", *SWEEP, f"hydra.sweep.dir={folder}")
    run = Path(sweep_status.sweep_status(folder).jobs[0].run_dir)
    info = read_json(run / "run.json")
    info["status"] = info["sessions"][-1]["status"] = "interrupted"
    info["problems"]["done"] = 2
    write_json(run / "run.json", info)
    assert sweep_status.sweep_status(folder).jobs[0].state == "partial"
    with lock.locked(run, "run"):
        job = sweep_status.sweep_status(folder).jobs[0]
        assert (job.state, job.done, job.total) == ("running", 2, 5)
    assert sweep_status.sweep_status(folder).jobs[0].state == "partial"


def test_readers_answer_as_before_a_checkpoint_until_its_lines_are_whole(
    tmp_path, monkeypatch, engine
):
    """status, merge and analyze read a shard while its last checkpoint is being written: at
    every cut of the append they answer as before it (a line counts once its newline is
    there); once run.json is rewritten, and once the run finishes, as after."""
    folder = tmp_path / "sweep"
    sweep(
        monkeypatch,
        "dataset.num_shards=2",
        "dataset.shard=0,1",
        *SWEEP,
        f"hydra.sweep.dir={folder}",
    )
    shard0 = Path(sweep_status.sweep_status(folder).jobs[0].run_dir)
    completions = shard0 / "completions.jsonl"
    finished = {name: (shard0 / name).read_bytes() for name in ("run.json", "metrics.json")}
    lines = completions.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3  # shard 0 holds 3 of the 5 problems: batches of 2, then 1
    before, last = b"".join(lines[:2]), lines[2]

    def answers() -> tuple:
        jobs = sweep_status.sweep_status(folder).jobs
        groups = shards.find_groups(folder, exclude=folder / "merged")
        for group in groups:
            shards.check(group)
        try:
            found = collect([folder])
            runs = sorted(found.runs["run"]), sorted(s.reason for s in found.skipped)
        except AnalysisError as error:
            runs = str(error)
        return (
            [(j.state, j.done, j.total) for j in jobs],
            [(g.gaps, len(g.records)) for g in groups],
            runs,
        )

    # the shard as it stood after its first checkpoint, its process holding the lock
    info = read_json(shard0 / "run.json")
    info["status"] = info["sessions"][-1]["status"] = "running"
    info["problems"]["done"] = 2
    info.pop("finished_at")
    write_json(shard0 / "run.json", info)
    (shard0 / "metrics.json").unlink()
    completions.write_bytes(before)
    with lock.locked(shard0, "run"):
        first = answers()
        assert first[0] == [("running", 2, 3), ("done", 2, 2)]
        assert first[1] == [([f"shard 0: 2 of 3 problems (running) in {shard0}"], 4)]
        assert first[2][0] == [Path(sweep_status.sweep_status(folder).jobs[1].run_dir).name]
        for cut in sorted({*range(1, len(last), 97), len(last) - 1}):
            completions.write_bytes(before + last[:cut])
            assert answers() == first, f"cut at byte {cut} of {len(last)}"
        completions.write_bytes(before + last)  # the line is whole: merge counts it
        whole = answers()
        assert whole[1] == [([f"shard 0: 3 of 3 problems (running) in {shard0}"], 5)]
        assert whole[0] == first[0] and whole[2] == first[2]  # run.json still says 2
        info["problems"]["done"] = 3
        write_json(shard0 / "run.json", info)
        assert answers()[0] == [("running", 3, 3), ("done", 2, 2)]
        for name, data in finished.items():  # the run finishes: metrics, then run.json
            (shard0 / name).write_bytes(data)
    done = answers()
    assert done[0] == [("done", 3, 3), ("done", 2, 2)]
    assert done[1] == [([], 5)] and len(done[2][0]) == 2 and done[2][1] == []


@pytest.mark.slow  # real job processes (a few seconds each), though no engine
def test_status_reads_why_submitit_jobs_died_and_resubmit_relaunches_them_with_a_new_setting(
    tmp_path,
):
    """Real submitit (local executor): jobs whose config is invalid exit before writing
    run.json; status finds the error line in submitit's log (no engine is started). Then
    `status --resubmit hydra.launcher.timeout_min=7` relaunches the unfinished jobs through
    submitit with the new setting (the jobs themselves are the same: they fail again at their
    config check). On Slurm the same setting becomes the new array's --time
    (tests/test_cluster.py)."""
    folder = tmp_path / "sweep"
    proc = run_module(
        "hotncold",
        "-m",
        "cluster=submitit_local",
        "temperature=multi",
        "n=1,2",
        f"hydra.sweep.dir={folder}",
        timeout=300,
    )
    assert proc.returncode != 0
    report = sweep_status.sweep_status(folder)
    assert report.launcher == "submitit_local"
    for job, n in zip(report.jobs, (1, 2)):
        assert job.state == "failed" and job.run_dir is not None and job.job_id
        assert job.note == (
            f"hotncold: error: n={n} is smaller than the 3 temperatures in temperature.values; "
            "raise n to at least 3"
        )

    runs = [Path(job.run_dir) for job in report.jobs]
    assert [launcher_of(run)["timeout_min"] for run in runs] == [1440, 1440]  # the option's

    proc = run_module(
        "hotncold.status", str(folder), "--resubmit", "hydra.launcher.timeout_min=7", timeout=300
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # the jobs are still not done
    assert "resubmitting 2 jobs" in proc.stdout
    again = sweep_status.sweep_status(folder)
    assert [j.overrides for j in again.jobs] == [j.overrides for j in report.jobs]
    assert [Path(j.run_dir) for j in again.jobs] == runs
    for before, after, run in zip(report.jobs, again.jobs, runs):
        assert after.state == "failed" and after.job_id != before.job_id  # a new submission
        assert (folder / ".submitit" / after.job_id).is_dir()
        assert launcher_of(run)["timeout_min"] == 7
        assert launcher_of(run)["_target_"].endswith("LocalLauncher")


def launcher_of(run: Path) -> dict:
    """The launcher settings Hydra recorded for the run's last job (.hydra/hydra.yaml)."""
    import yaml

    return yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]["launcher"]
