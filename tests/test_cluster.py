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
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, run_module

from hotncold.cluster.slurm import job_states

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


def wait_for(condition, timeout: float, what: str):
    """Poll `condition` until it returns something true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.5)
    pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}")


def accounting(job: str, *options: str) -> list[tuple[str, str]]:
    """(job id, state) of each record sacct holds for `job`, steps left out."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job, *options],
        capture_output=True,
        text=True,
        check=True,
    )
    return [tuple(line.split("|")) for line in out.stdout.splitlines() if line]


def sbatch(*args: str) -> str:
    out = subprocess.run(
        ["sbatch", "--parsable", "-p", "debug", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return out.stdout.strip().split(";")[0]


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
    preempted = cancelled = queued = None
    released = False
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        if queued is None and len(list(folder.glob(".submitit/*_*/*_submitted.pkl"))) == 4:
            array = next(folder.glob(".submitit/*_0")).name.split("_")[0]
            if [slurm_state(f"{array}_{i}") for i in (2, 3)] == ["PENDING", "PENDING"]:
                # tasks 2 and 3 wait for a free slot (at most 2 at once) behind 0 and 1
                queued = SimpleNamespace(array=array, report=sweep_status(folder))
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
    assert preempted and cancelled and queued, (folder.parent / "sweep.log").read_text()[-3000:]
    sweep_s = time.monotonic() - started

    # the sweep command stops waiting at the cancelled job; the others (the requeued one among
    # them) run to their end first, so that the report below is exact
    def others_done():
        report = sweep_status(folder)
        names = [j["run_dir"] and Path(j["run_dir"]).name for j in report["jobs"]]
        states = [j["state"] for j, n in zip(report["jobs"], names) if n != cancelled.run.name]
        return states == ["done"] * 3 and report

    before = wait_for(others_done, max(60, deadline - time.monotonic()), "the other jobs to end")
    started = time.monotonic()
    resubmitted = hotncold(
        str(folder), "--resubmit", "hydra.launcher.timeout_min=42", module="hotncold.status"
    )
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
        queued=queued,
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
    # accounting holds both runs of the one job (-D lists a requeued job's earlier run)
    runs = wait_for(
        lambda: (r := accounting(p.job, "-D")) and r[-1][1] == "COMPLETED" and r,
        60,
        f"accounting to record job {p.job} completed",
    )
    assert runs == [(p.job, "REQUEUED"), (p.job, "COMPLETED")]


def test_cancelled_job_is_found_by_status_and_finished_by_resubmit(slurm_sweep):
    c = slurm_sweep.cancelled
    jobs = {Path(j["run_dir"]).name: j for j in slurm_sweep.before["jobs"] if j["run_dir"]}
    cancelled = jobs[c.run.name]
    assert cancelled["state"] == "partial"
    assert cancelled["done"] >= len(c.lines) and cancelled["total"] == 4
    assert "CANCELLED" in cancelled["note"]
    others = [j for name, j in jobs.items() if name != c.run.name]
    assert [j["state"] for j in others] == ["done"] * 3

    proc = slurm_sweep.resubmitted
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resubmitting 1 jobs" in proc.stdout
    sessions = info(c.run)["sessions"]
    assert [s["status"] for s in sessions] == ["interrupted", "finished"]
    # scancel's SIGTERM reaches the run, which closes its session noting the signal (within
    # the KillWait seconds before Slurm's SIGKILL)
    assert sessions[0]["error"].startswith("SIGTERM received"), sessions[0]["error"]
    new = sessions[1]["slurm_job_id"]
    assert new != c.job  # a new submission...
    assert (slurm_sweep.folder / ".submitit" / new).is_dir()
    # ...with the launcher setting given to --resubmit: its own sbatch time limit
    script = next((slurm_sweep.folder / ".submitit" / new.split("_")[0]).glob("*_submission.sh"))
    assert "#SBATCH --time=42\n" in script.read_text()
    first = sessions[0]["slurm_job_id"].split("_")[0]
    first_script = next((slurm_sweep.folder / ".submitit" / first).glob("*_submission.sh"))
    assert "#SBATCH --time=60\n" in first_script.read_text()  # cluster=slurm_local's
    done = lines(c.run)
    assert done[: len(c.lines)] == c.lines and len(done) == 4
    # every other job ran once (the preempted one twice, requeued): none was resubmitted
    for run in (p.parent for p in slurm_sweep.folder.glob("*/run.json")):
        if run not in (c.run, slurm_sweep.preempted.run):
            assert len(info(run)["sessions"]) == 1
    assert slurm_sweep.after["counts"] == {"done": 4}


def test_status_reports_array_tasks_waiting_in_the_queue_as_queued(slurm_sweep):
    # sacct finds nothing for `-j <array>_2` while task 2 waits in the record `<array>_[2-3%2]`;
    # reported missing, --resubmit would have launched a second copy of a queued job
    q = slurm_sweep.queued
    jobs = {j["job_id"]: j for j in q.report["jobs"]}
    for task in (f"{q.array}_2", f"{q.array}_3"):
        assert (jobs[task]["state"], jobs[task]["note"]) == ("queued", "slurm: PENDING")
    assert q.report["counts"].get("missing", 0) == 0 and len(q.report["jobs"]) == 4


def test_job_states_reads_pending_array_tasks_and_final_states(slurm):
    """Real accounting: an array whose tasks 1-2 wait behind task 0, then cancelled."""
    array = sbatch("--array=0-2%1", "-c", "1", "-o", "/dev/null", "--wrap", "sleep 300")
    tasks = [f"{array}_{i}" for i in range(3)]
    try:
        wait_for(lambda: slurm_state(tasks[0]) == "RUNNING", 60, f"{tasks[0]} to start")
        pending = f"{array}_[1-2%1]"
        wait_for(lambda: (pending, "PENDING") in accounting(array), 60, f"sacct to list {pending}")
        assert accounting(tasks[2]) == []  # asked by its own id, a waiting task is not found
        assert job_states(tasks) == dict(zip(tasks, ["RUNNING", "PENDING", "PENDING"]))
    finally:
        subprocess.run(["scancel", array], check=True)
    wait_for(
        lambda: [s for _, s in accounting(array)] == ["CANCELLED by 0"] * 2,
        60,
        "accounting to record the cancellation",
    )  # (the two tasks that never ran stay one record)
    assert job_states(tasks) == dict.fromkeys(tasks, "CANCELLED")


def broken_accounting(folder: Path) -> dict[str, str]:
    """The environment of a client whose accounting daemon does not answer (connection
    refused, as when slurmdbd is down); the controller still answers."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lines = [line for line in conf.splitlines() if not line.startswith("AccountingStorage")]
    lines += [
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=127.0.0.1",
        f"AccountingStoragePort={port}",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "slurm.conf").write_text("\n".join(lines) + "\n")
    return {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}


def test_resubmit_refuses_a_slurm_sweep_when_accounting_cannot_be_asked(slurm, tmp_path):
    folder = tmp_path / "sweep"
    # two jobs that stop at their config check: real Slurm jobs, no engine
    proc = hotncold(
        "-m",
        "cluster=slurm_local",
        "temperature=multi",
        "n=1,2",
        f"hydra.sweep.dir={folder}",
        timeout=600,
    )
    submitted = sorted(p.name for p in folder.glob(".submitit/*_*") if p.is_dir())
    assert proc.returncode != 0 and len(submitted) == 2, proc.stderr[-3000:]
    env = broken_accounting(tmp_path / "etc")

    def status(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "hotncold.status", str(folder), *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)

    shown = status()
    assert shown.returncode == 1
    assert "sacct failed: sacct: error: Problem talking to the database" in shown.stderr
    assert shown.stdout.count("cannot tell whether it still runs") == 2
    refused = status("--resubmit")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.strip().endswith(
        "hotncold: error: cannot ask Slurm (sacct) which jobs still run, so nothing is "
        "resubmitted; run this where sacct works"
    )
    assert sorted(p.name for p in folder.glob(".submitit/*_*") if p.is_dir()) == submitted
    # with accounting answering, the same sweep reads as two failed jobs
    report = sweep_status(folder)
    assert report["counts"] == {"failed": 2}


def test_engine_processes_outlive_the_preemption_signal(slurm, tmp_path):
    """Slurm delivers a job's signals (`scancel --signal=USR2`, and the `--signal=USR2@<s>`
    submitit asks sbatch for) to every process of the job step, vLLM's engine core and workers
    included. They must not die of it: the job's handler runs after they got it."""
    out = tmp_path / "probe.out"
    probe = ROOT / "tests" / "preemption_probe.py"
    job = sbatch(
        "-c1", "--mem=4G", "-t", "15", "-o", str(out), "--wrap", f"srun {sys.executable} -u {probe}"
    )
    try:
        wait_for(lambda: out.exists() and "ready" in out.read_text(), 600, "the engine to start")
        signal_job("--signal=USR2", job)
        wait_for(lambda: slurm_state(job) in ("", "COMPLETED", "FAILED"), 300, "the probe to end")
    finally:
        subprocess.run(["scancel", job])
    text = out.read_text()
    handled = [line for line in text.splitlines() if line.startswith("handled SIGUSR2")]
    assert len(handled) == 1 and handled[0].endswith(" 0 dead"), text[-3000:]
    assert "generated after the signal" in text.splitlines(), text[-3000:]
    state = wait_for(lambda: accounting(job)[0][1] != "RUNNING" and accounting(job), 60, "sacct")
    assert state == [(job, "COMPLETED")]


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
    for run in runs:  # ...each with its own engine
        log = (run / "run.log").read_text()
        assert "starting vLLM on" in log and "reusing the loaded engine" not in log
    assert len([p for p in (folder / ".submitit").iterdir() if p.is_dir()]) >= 2
    report = sweep_status(folder)
    assert report["launcher"] == "submitit_local" and report["counts"] == {"done": 2}
