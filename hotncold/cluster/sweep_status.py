"""Where every job of a sweep stands: done, running (or queued), partial, failed or missing.

The jobs are the ones the sweep's `multirun.yaml` lists (`cluster.sweep.expected_jobs`), so a
job that never wrote anything is still reported; each job's state comes from its run.json and,
for Slurm and submitit sweeps, from `sacct` and submitit's folder (`cluster.slurm`).
`resubmit` launches the partial, failed and missing jobs again through the sweep's own
launcher. The command line is `python -m hotncold.status` (`hotncold/status.py`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotncold.cluster.slurm import LIVE_STATES, SubmittedJob, job_states, submitted_jobs
from hotncold.cluster.sweep import expected_jobs, read_multirun, relaunch
from hotncold.config import ConfigError
from hotncold.experiment import lock
from hotncold.experiment.rundir import read_json

log = logging.getLogger(__name__)

STATES = ("done", "running", "queued", "partial", "failed", "missing")
UNFINISHED = ("partial", "failed", "missing")
LAUNCHERS = {
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher": "slurm",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher": "submitit_local",
}


@dataclass
class JobReport:
    """Where one job of a sweep stands."""

    overrides: tuple[str, ...]
    state: str
    """done, running, queued, partial, failed or missing."""
    run_dir: str | None = None
    done: int | None = None
    total: int | None = None
    note: str | None = None
    """Why: the error line, the Slurm state, what is missing."""
    job_id: str | None = None
    """The last Slurm (or submitit) job that ran it."""

    @property
    def unfinished(self) -> bool:
        return self.state in UNFINISHED


@dataclass
class SweepStatus:
    sweep_dir: str
    launcher: str
    """slurm, submitit_local or local (Hydra's basic launcher)."""
    jobs: list[JobReport]
    other_runs: list[str] = field(default_factory=list)
    """Run folders in the sweep folder that belong to no job of multirun.yaml."""
    slurm_reachable: bool = True

    @property
    def unfinished(self) -> list[JobReport]:
        return [j for j in self.jobs if j.unfinished]

    def counts(self) -> Counter:
        return Counter(j.state for j in self.jobs)


@dataclass
class _Liveness:
    """Which processes or Slurm jobs still run, as far as this machine can tell."""

    launcher: str
    slurm: dict[str, str] | None = None

    def of_session(self, session: dict[str, Any]) -> bool | None:
        """Whether the process of a session runs, its run directory's lock being free."""
        job_id = session.get("slurm_job_id")
        if job_id and self.launcher == "slurm":
            return self.of_job(job_id)  # still running, or requeued after its session ended
        if session.get("status") != "running":
            return False  # its process closed the session and moved on
        scope = (session.get("lock") or {}).get("scope")
        if scope == "shared" or (scope == "node" and session.get("host") == socket.gethostname()):
            return False  # it held a lock this machine sees, and that lock is free: it is gone
        return _process_alive(session.get("host"), session.get("pid"))

    def of_job(self, job_id: str | None) -> bool | None:
        if job_id is None:
            return False
        if self.launcher != "slurm":  # a submitit local job's id is its process id
            return _process_alive(socket.gethostname(), int(job_id.split("_")[0]))
        if self.slurm is None:
            return None
        return self.slurm.get(job_id, "GONE") in LIVE_STATES

    def slurm_state(self, job_id: str | None) -> str | None:
        if job_id is None or self.slurm is None or self.launcher != "slurm":
            return None
        return self.slurm.get(job_id)


def sweep_status(sweep_dir: Path) -> SweepStatus:
    """Every job of the sweep in `sweep_dir`, in launch order."""
    sweep_dir = Path(sweep_dir)
    jobs = expected_jobs(sweep_dir)
    target = read_multirun(sweep_dir).hydra.launcher.get("_target_", "")
    launcher = LAUNCHERS.get(target, "local")
    runs = _run_dirs(sweep_dir)
    submitted = _submitted_by_overrides(sweep_dir) if launcher != "local" else {}

    infos = {o: _read_info(d) for o, d in runs.items()}
    # A held lock is the best evidence that a run is running. Asked after run.json is read:
    # a run writes its last run.json before it lets go, so when the lock is free, run.json
    # read again holds the last word of whoever held it.
    holders = {o: lock.holder(d) for o, d in runs.items()}
    for o, d in runs.items():
        if holders[o] is None and infos[o].get("status") == "running":
            infos[o] = _read_info(d)
    live = _Liveness(launcher)
    if launcher == "slurm":
        ids = [s.get("slurm_job_id") for i in infos.values() for s in i.get("sessions", [])[-1:]]
        ids += [job.job_id for job in submitted.values()]
        live.slurm = job_states([i for i in ids if i])

    reports = [
        _report(job, runs.get(job), infos.get(job, {}), submitted.get(job), live, holders.get(job))
        for job in jobs
    ]
    if launcher == "local":
        # The basic launcher runs jobs one after another in the sweep's own process: while one
        # runs, the ones after it that have not started are waiting for it, not lost.
        running = [i for i, r in enumerate(reports) if r.state == "running"]
        for report in reports[running[0] + 1 :] if running else []:
            if report.state == "missing":
                report.state, report.note = "queued", "waiting for the sweep's process"
    expected = set(jobs)
    others = sorted(str(d) for o, d in runs.items() if o not in expected)
    return SweepStatus(
        str(sweep_dir), launcher, reports, others, launcher != "slurm" or live.slurm is not None
    )


def _report(
    overrides: tuple[str, ...],
    run_dir: Path | None,
    info: dict[str, Any],
    submitted: SubmittedJob | None,
    live: _Liveness,
    holder: lock.Holder | None = None,
) -> JobReport:
    report = JobReport(overrides, "missing", run_dir=str(run_dir) if run_dir else None)
    session = (info.get("sessions") or [{}])[-1]
    report.job_id = session.get("slurm_job_id") or (submitted.job_id if submitted else None)
    problems = info.get("problems") or {}
    report.done, report.total = problems.get("done"), problems.get("total")
    status = info.get("status")
    if status == "finished" and report.done == report.total:
        report.state = "done"
        return report
    if holder is not None:  # some process holds the run directory: it runs, whatever else says
        report.state = "running"
        report.job_id = holder.slurm_job_id or report.job_id
        if holder.purpose != "run":
            report.note = f"{holder.purpose} in progress"
        elif not info:
            report.note = "starting"
        return report

    # Still going? Its last session's process or Slurm job, or a newer submission of it.
    newest = submitted.job_id if submitted is not None else None
    alive = [
        (report.job_id, live.of_session(session) if session else False),
        (newest, live.of_job(newest) if newest else False),
    ]
    running = [job_id for job_id, up in alive if up]
    if running:
        report.job_id = running[-1] or report.job_id
        state = live.slurm_state(report.job_id)
        started = bool(info) and state not in ("PENDING", "REQUEUED", "REQUEUE_HOLD")
        report.state = "running" if started else "queued"
        report.note = f"slurm: {state}" if state and state != "RUNNING" else None
        return report
    if any(up is None for _, up in alive):
        report.state = "running"
        report.note = "cannot tell whether it still runs (Slurm unreachable, or another host)"
        return report

    slurm_state = live.slurm_state(report.job_id)
    error = info.get("error") or session.get("error")
    if not info:
        error = submitted.error_line() if submitted is not None else None
        report.state = "failed" if error else "missing"
        report.note = error or (
            "started, but stopped before its run began (no run.json)"
            if run_dir
            else "never started"
        )
    elif status == "failed":
        report.state = "failed"
        report.note = error
    else:  # interrupted, or "running" with its process gone
        report.state = "partial"
        if error is None and submitted is not None:
            error = submitted.error_line()
        report.note = error or "stopped without a word (killed?)"
    if slurm_state:
        report.note = f"{report.note}; slurm: {slurm_state}"
    return report


def _run_dirs(sweep_dir: Path) -> dict[tuple[str, ...], Path]:
    """Run folders by the overrides Hydra recorded for them; the most recent wins a tie."""
    found: dict[tuple[str, ...], Path] = {}
    for path in sorted(sweep_dir.glob("*/.hydra/overrides.yaml")):
        run = path.parent.parent
        overrides = _overrides_of(run, path)
        if overrides is None:
            continue
        if overrides in found and _mtime(found[overrides]) >= _mtime(run):
            continue
        found[overrides] = run
    return found


def _overrides_of(run: Path, hydra_overrides: Path) -> tuple[str, ...] | None:
    """The task overrides of a run: from its config.yaml, written atomically by the run, when
    there is one; Hydra rewrites .hydra/overrides.yaml in place whenever a process starts on
    the folder (a refused second one too), so a reader may catch it empty or cut."""
    try:
        if (run / "config.yaml").is_file():
            stored = yaml.safe_load((run / "config.yaml").read_text()) or {}
            if isinstance(stored.get("overrides"), list):
                return tuple(str(o) for o in stored["overrides"])
        return tuple(str(o) for o in yaml.safe_load(hydra_overrides.read_text()) or [])
    except (OSError, yaml.YAMLError):
        return None


def _mtime(run: Path) -> float:
    info = run / "run.json"
    return (info if info.exists() else run).stat().st_mtime


def _read_info(run: Path | None) -> dict[str, Any]:
    if run is None or not (run / "run.json").is_file():
        return {}
    try:
        return read_json(run / "run.json")
    except (OSError, ValueError):
        return {}


def _submitted_by_overrides(sweep_dir: Path) -> dict[tuple[str, ...], SubmittedJob]:
    """The latest submitit job of each override set."""
    latest: dict[tuple[str, ...], SubmittedJob] = {}
    for job in submitted_jobs(sweep_dir):  # oldest first
        if job.overrides is not None:
            latest[job.overrides] = job
    return latest


def _process_alive(host: str | None, pid: int | None) -> bool | None:
    """Whether a process runs: known only on its own host."""
    if not pid:
        return False
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def format_status(status: SweepStatus) -> str:
    lines = []
    width = max((len(j.state) for j in status.jobs), default=7)
    for job in status.jobs:
        counts = f"{job.done}/{job.total}" if job.total is not None else "-"
        name = Path(job.run_dir).name if job.run_dir else " ".join(job.overrides)
        line = f"{job.state:<{width}}  {counts:>9}  {name}"
        if job.job_id:
            line += f"  [job {job.job_id}]"
        if job.note:
            line += f"  {job.note}"
        lines.append(line)
    counts = status.counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in STATES if counts[s])
    lines.append(
        f"{len(status.jobs)} jobs ({status.launcher} launcher) in {status.sweep_dir}: {summary}"
    )
    if status.other_runs:
        lines.append(
            f"{len(status.other_runs)} other run folders there belong to no job of multirun.yaml"
        )
    if status.unfinished:
        lines.append(
            f"resubmit the {len(status.unfinished)} unfinished: "
            f"python -m hotncold.status {status.sweep_dir} --resubmit"
        )
    return "\n".join(lines)


def resubmit(status: SweepStatus, extra: list[str]) -> list[str]:
    """Launch the unfinished jobs of `status` again; returns the errors jobs raised."""
    refuse_blind_resubmission(status)
    jobs = [j.overrides for j in status.unfinished]
    return relaunch(Path(status.sweep_dir), jobs, extra)


def refuse_blind_resubmission(status: SweepStatus) -> None:
    """ConfigError when Slurm's accounting cannot be asked and the sweep is not done."""
    # Without accounting, a job with a Slurm id reads "running (cannot tell)", not unfinished:
    # refuse outright rather than answer "nothing to resubmit" for a sweep that is not done.
    if not status.slurm_reachable and any(j.state != "done" for j in status.jobs):
        raise ConfigError(
            "cannot ask Slurm (sacct) which jobs still run, so nothing is resubmitted; run this "
            "where sacct works"
        )
