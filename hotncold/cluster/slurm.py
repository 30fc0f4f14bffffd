"""What Slurm and submitit know about a sweep's jobs: job states, and the submitit folder.

A sweep through `cluster=slurm*` or `cluster=submitit_local` keeps submitit's files in
`<sweep dir>/.submitit/<job id>/`: the pickled job (which holds the job's overrides), its
stdout/stderr logs and its result. `hotncold.status` reads them to tell queued jobs from
vanished ones and to find the error line of a job that died before its run began.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# States of a job that is queued, running or about to run again; any other state is final.
LIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SUSPENDED",
        "CONFIGURING",
        "COMPLETING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
    }
)
_JOB_ID = re.compile(r"^\d+(_\d+)?$")
_ERROR_LINE = re.compile(
    r"^(hotncold: error:.*|[\w.]*(Error|Exception|Interrupt|Exit)\b.*|.*\*\*\* .* \*\*\*.*)$"
)


def job_states(job_ids: list[str]) -> dict[str, str] | None:
    """The Slurm state of each job id (`123` or `123_4`), from `sacct` as submitit asks it;
    a job sacct does not know is left out. None when Slurm cannot be asked at all."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    if not job_ids:
        return {}
    if shutil.which("sacct") is None:
        return None
    states: dict[str, str] = {}
    ids = sorted(set(job_ids))
    for start in range(0, len(ids), 200):  # keep the command line short
        command = ["sacct", "-o", "JobID,State,NodeList", "--parsable2"]
        for job_id in ids[start : start + 200]:
            command += ["-j", job_id]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        for job_id, info in SlurmInfoWatcher().read_info(out.stdout).items():
            # "CANCELLED by 0" -> CANCELLED
            states[job_id] = (info.get("State") or "UNKNOWN").split()[0]
    return {job_id: states[job_id] for job_id in ids if job_id in states}


@dataclass
class SubmittedJob:
    """One job submitit launched into this sweep folder."""

    job_id: str
    folder: Path
    overrides: tuple[str, ...] | None
    """The Hydra overrides it runs (None when its pickle cannot be read)."""

    @property
    def order(self) -> tuple[int, int]:
        main, _, task = self.job_id.partition("_")
        return int(main), int(task or 0)

    def error_line(self) -> str | None:
        """The line that says why the job failed: the exception submitit recorded, else the
        last error-looking line of its stderr (a `hotncold: error:` exit, a Slurm message)."""
        from submitit.core.utils import pickle_load

        result = self.folder / f"{self.job_id}_0_result.pkl"
        if result.is_file():
            try:
                outcome, value = pickle_load(result)
            except Exception:  # a result written by other code versions; fall back to the log
                outcome, value = None, None
            if outcome == "error" and isinstance(value, str):
                lines = [line for line in value.strip().splitlines() if line.strip()]
                if lines:
                    return lines[-1].strip()
        for name in (f"{self.job_id}_0_log.err", f"{self.job_id}_0_log.out"):
            log = self.folder / name
            if not log.is_file():
                continue
            lines = log.read_text(errors="replace").splitlines()
            for line in reversed(lines[-400:]):
                if _ERROR_LINE.match(line.strip()):
                    return line.strip()
        return None


def submitted_jobs(sweep_dir: Path) -> list[SubmittedJob]:
    """Every job submitit launched into `sweep_dir/.submitit`, oldest first."""
    from submitit.core.utils import DelayedSubmission

    root = Path(sweep_dir) / ".submitit"
    jobs = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        pickled = folder / f"{folder.name}_submitted.pkl"
        if not (_JOB_ID.match(folder.name) and pickled.is_file()):
            continue
        try:
            args = DelayedSubmission.load(pickled).args
            overrides = tuple(str(o) for o in args[0])
        except Exception:  # pickled by other code versions; the job is still listed
            overrides = None
        jobs.append(SubmittedJob(folder.name, folder, overrides))
    return sorted(jobs, key=lambda j: j.order)
