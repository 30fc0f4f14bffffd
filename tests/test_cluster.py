"""Sweeps through real launchers: a real one-node Slurm cluster (tests/slurm_local.sh) and
submitit's local executor, every job a real vLLM engine on the embedded model.

The Slurm scenario is one sweep of 2 temperatures x 2 seeds (one job array, two jobs at a time)
in which one running job gets the signal Slurm sends before a time limit (submitit requeues it
and it resumes) and another running job is cancelled with scancel; `hotncold.status` then finds
the cancelled job and `--resubmit` finishes it. One sweep serves several tests because every
Slurm job starts its own engine (30-60 s here).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, run_module

pytestmark = pytest.mark.slow

JOB_ARGS = [
    "dataset.per_level=2",
    "dataset.levels=[1,2]",
    "n=4",
    "model.max_tokens=64",
    "batch_size=1",
]


def hotncold(*args: str, module: str = "hotncold", timeout: int = 900):
    return run_module(module, *args, timeout=timeout)


def info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def lines(run: Path) -> list[str]:
    path = run / "completions.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def sweep_status(folder: Path) -> dict:
    proc = hotncold(str(folder), "--json", module="hotncold.status", timeout=120)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return json.loads(proc.stdout)


def slurm_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def signal_job(*args: str) -> None:
    """scancel, given one try: when the job requeues itself on the signal, Slurm answers "can
    not be altered now" and scancel would retry for a minute, signalling the requeued job."""
    try:
        subprocess.run(["scancel", *args], timeout=3)
    except subprocess.TimeoutExpired:
        pass


@pytest.fixture(scope="module")
def slurm_sweep(slurm, tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm") / "sweep"
    started = time.monotonic()
    with open(folder.parent / "sweep.log", "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hotncold",
                "-m",
                "cluster=slurm_local",
                "temperature=cold,hot",
                "seed=0,1",
                *JOB_ARGS,
                f"hydra.sweep.dir={folder}",
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    preempted = cancelled = None
    released = False
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        for path in sorted(folder.glob("*/run.json")):
            run, session = path.parent, info(path.parent)["sessions"][-1]
            done = lines(run)
            if session["status"] != "running" or not 1 <= len(done) < 4:
                continue
            job = session["slurm_job_id"]
            if preempted is None:
                # what Slurm sends signal_delay_s before the time limit: submitit requeues
                signal_job("--signal=USR2", job)
                preempted = SimpleNamespace(run=run, job=job, lines=done)
            elif cancelled is None and run != preempted.run:
                signal_job(job)
                cancelled = SimpleNamespace(run=run, job=job, lines=done)
        if preempted and not released and slurm_state(preempted.job) == "PENDING":
            # Slurm holds a requeued job back for a couple of minutes; let it start now
            subprocess.run(["scontrol", "update", f"JobId={preempted.job}", "StartTime=now"])
            released = True
        time.sleep(0.1)
    assert proc.wait(timeout=max(1, deadline - time.monotonic())) != 0  # a job was cancelled
    assert preempted and cancelled, (folder.parent / "sweep.log").read_text()[-3000:]
    sweep_s = time.monotonic() - started

    before = sweep_status(folder)
    started = time.monotonic()
    resubmitted = hotncold(str(folder), "--resubmit", module="hotncold.status")
    resubmit_s = time.monotonic() - started
    while time.monotonic() < deadline:  # jobs the resubmission left alone may still run
        after = sweep_status(folder)
        if not set(after["counts"]) & {"running", "queued"}:
            break
        time.sleep(2)
    print(f"slurm sweep {sweep_s:.0f} s, resubmission {resubmit_s:.0f} s")
    return SimpleNamespace(
        folder=folder,
        preempted=preempted,
        cancelled=cancelled,
        before=before,
        resubmitted=resubmitted,
        after=after,
    )


def test_slurm_sweep_is_one_job_array(slurm_sweep):
    folder = slurm_sweep.folder
    runs = sorted(p.parent for p in folder.glob("*/run.json"))
    assert len(runs) == 4
    combos = set()
    first_jobs = []
    for run in runs:
        overrides = info(run)["overrides"]
        assert "cluster=slurm_local" in overrides
        t = next(o for o in overrides if o.startswith("temperature="))
        seed = next(o for o in overrides if o.startswith("seed="))
        combos.add((t, seed))
        temps = {c["temperature"] for line in lines(run) for c in json.loads(line)["completions"]}
        assert temps == {0.4 if t == "temperature=cold" else 1.2}
        first_jobs.append(info(run)["sessions"][0]["slurm_job_id"])
    assert len(combos) == 4
    arrays = {job.split("_")[0] for job in first_jobs}
    assert len(arrays) == 1 and sorted(j.split("_")[1] for j in first_jobs) == ["0", "1", "2", "3"]
    script = (folder / ".submitit" / arrays.pop()).glob("*_submission.sh")
    text = next(script).read_text()
    assert "#SBATCH --array=0-3%2" in text and "#SBATCH --partition=debug" in text
    assert slurm_sweep.after["counts"] == {"done": 4}


def test_preempted_job_is_requeued_and_resumes(slurm_sweep):
    p = slurm_sweep.preempted
    run_info = info(p.run)
    sessions = run_info["sessions"]
    assert [s["status"] for s in sessions] == ["interrupted", "finished"]
    # submitit's handler requeues the job and exits (Slurm's SIGTERM for the requeue may follow)
    assert sessions[0]["error"].startswith("SIGUSR2") and "then SystemExit" in sessions[0]["error"]
    assert [s["slurm_job_id"] for s in sessions] == [p.job, p.job]  # the same job, requeued
    done = lines(p.run)
    assert done[: len(p.lines)] == p.lines and len(done) == 4
    assert len({json.loads(line)["uid"] for line in done}) == 4
    assert sessions[1]["engine_calls"] < 4  # the second session searched only what was left
    show = subprocess.run(["scontrol", "show", "job", p.job], capture_output=True, text=True)
    assert "Restarts=1" in show.stdout


def test_cancelled_job_is_found_by_status_and_finished_by_resubmit(slurm_sweep):
    c = slurm_sweep.cancelled
    jobs = {Path(j["run_dir"]).name: j for j in slurm_sweep.before["jobs"] if j["run_dir"]}
    cancelled = jobs[c.run.name]
    assert cancelled["state"] == "partial"
    assert cancelled["done"] >= len(c.lines) and cancelled["total"] == 4
    assert "CANCELLED" in cancelled["note"]
    others = [j for name, j in jobs.items() if name != c.run.name]
    assert all(j["state"] in ("done", "running", "queued") for j in others)

    proc = slurm_sweep.resubmitted
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resubmitting 1 jobs" in proc.stdout
    sessions = info(c.run)["sessions"]
    assert [s["status"] for s in sessions] == ["interrupted", "finished"]
    # scancel's SIGTERM kills the engine process and the run closes its session noting the
    # signal, unless Slurm's SIGKILL comes first (then the next session marks it interrupted)
    error = sessions[0].get("error")
    assert error is None or error.startswith("SIGTERM received"), error
    assert sessions[1]["slurm_job_id"] != c.job  # a new submission
    assert (slurm_sweep.folder / ".submitit" / sessions[1]["slurm_job_id"]).is_dir()
    done = lines(c.run)
    assert done[: len(c.lines)] == c.lines and len(done) == 4
    # every other job ran once (the preempted one twice, requeued): none was resubmitted
    for run in (p.parent for p in slurm_sweep.folder.glob("*/run.json")):
        if run not in (c.run, slurm_sweep.preempted.run):
            assert len(info(run)["sessions"]) == 1
    assert slurm_sweep.after["counts"] == {"done": 4}


def test_submitit_local_sweep_runs_each_job_in_its_own_process(tmp_path):
    folder = tmp_path / "sweep"
    proc = hotncold(
        "-m",
        "cluster=submitit_local",
        "temperature=cold,hot",
        "dataset.per_level=1",
        "dataset.levels=[1,2]",
        "n=2",
        "model.max_tokens=48",
        f"hydra.sweep.dir={folder}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in folder.glob("*/run.json"))
    assert len(runs) == 2
    sessions = [info(run)["sessions"][0] for run in runs]
    assert all(info(run)["status"] == "finished" for run in runs)
    assert len({s["pid"] for s in sessions}) == 2  # two processes...
    assert all(s["engine_start_s"] > 5 for s in sessions)  # ...each with its own engine
    assert len([p for p in (folder / ".submitit").iterdir() if p.is_dir()]) >= 2
    report = sweep_status(folder)
    assert report["launcher"] == "submitit_local" and report["counts"] == {"done": 2}
