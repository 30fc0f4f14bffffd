"""What Slurm and submitit know about a sweep's jobs: job states, and the submitit folder.

A sweep through `cluster=slurm*` or `cluster=submitit_local` keeps submitit's files in
`<sweep dir>/.submitit/<job id>/`: the pickled job (which holds the job's overrides), its
stdout/stderr logs and its result. `hotncold.status` reads them to tell queued jobs from
vanished ones and to find the error line of a job that died before its run began.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# States of a job that is queued, running or about to run again (squeue(1), JOB STATE CODES);
# any other state is final.
LIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESV_DEL_HOLD",
        "SPECIAL_EXIT",
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
_QUERY_CHUNK = 200  # job ids per command line


def job_states(job_ids: list[str]) -> dict[str, str] | None:
    """The Slurm state of each job id (`123` or `123_4`); a job Slurm does not know is left out.
    None when accounting (sacct) cannot be asked.

    Accounting is asked by whole job (array) ids: `sacct -j 123_4` finds nothing while task 4
    still waits in the array's pending record `123_[2-5%2]`. Jobs the controller still holds
    take their state from squeue instead, since accounting lags it by seconds on a quiet cluster
    (a task that runs shows as PENDING, or not at all, in sacct) and more on a busy one.
    """
    if not job_ids:
        return {}
    if shutil.which("sacct") is None:
        log.warning("sacct is not on PATH: cannot ask Slurm's accounting")
        return None
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids}, key=int)
    states: dict[str, str] = {}
    for start in range(0, len(arrays), _QUERY_CHUNK):
        chunk = ",".join(arrays[start : start + _QUERY_CHUNK])
        out = _ask(["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", chunk])
        if out is None:
            return None
        states.update(parse_sacct(out))
    for start in range(0, len(arrays), _QUERY_CHUNK):
        chunk = ",".join(arrays[start : start + _QUERY_CHUNK])
        command = ["squeue", "-h", "-r", "--states=all", "-o", "%i|%T", "-j", chunk]
        out = _ask(command, quiet=True) if shutil.which("squeue") else None
        states.update(parse_squeue(out or ""))  # the controller unreachable: accounting alone
    return {job_id: states[job_id] for job_id in sorted(set(job_ids)) if job_id in states}


def _ask(command: list[str], quiet: bool = False) -> str | None:
    """The stdout of a Slurm client command, None when it fails (the reason is logged)."""
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        log.warning("%s failed: %s", command[0], error)
        return None
    if out.returncode != 0:
        if command[0] == "squeue" and "Invalid job id" in out.stderr:
            return ""  # the controller forgot every one of them (MinJobAge): they are over
        reason = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        (log.debug if quiet else log.warning)("%s failed: %s", command[0], reason)
        return None
    return out.stdout


def parse_sacct(text: str) -> dict[str, str]:
    """Job states from `sacct -o JobID,State,... --parsable2` output, as submitit reads it:
    steps (`123.batch`, `123_4.extern`, `123.0`) are skipped, a pending array record
    (`123_[2-5%2]`) stands for each of its tasks, and a state's detail is dropped
    (`CANCELLED by 0` -> `CANCELLED`). A job listed twice (`sacct -D`) keeps its last record."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    with warnings.catch_warnings():  # submitit warns (and skips) on an id it cannot read
        warnings.simplefilter("ignore", DeprecationWarning)
        info = SlurmInfoWatcher().read_info(text)
    return {job_id: (row.get("State") or "UNKNOWN").split()[0] for job_id, row in info.items()}


def parse_squeue(text: str) -> dict[str, str]:
    """Job states from `squeue -h -r -o '%i|%T'` output (`-r`: one line per array task)."""
    states = {}
    for line in text.splitlines():
        job_id, _, state = line.strip().partition("|")
        if _JOB_ID.match(job_id) and state:
            states[job_id] = state.split()[0]
    return states


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
