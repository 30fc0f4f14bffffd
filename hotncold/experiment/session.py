"""This process's share of a run, kept in run.json next to earlier sessions' shares.

A run may take several sessions (a crash, a preemption, a rerun that resumes). Each one appends
its own entry to run.json's `sessions` (command, code version, host, Slurm job, timings, the
engine's and PRM's counts) and rewrites the run's `status`, `problems` and summed `totals` as
it goes. `noting_signals` makes a run stopped by the scheduler end `interrupted`, not `failed`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hotncold.config import Config
from hotncold.experiment.naming import RESULTS_VERSION
from hotncold.experiment.rundir import RunDir, now, provenance, write_json

log = logging.getLogger("hotncold")


class Session:
    """This process's share of a run, kept in run.json next to earlier sessions' shares."""

    COUNTERS = (
        "engine_start_s",
        "generate_s",
        "prm_s",
        "grade_s",
        "generated_tokens",
        "prompt_tokens",
        "cached_prompt_tokens",
        "prm_tokens",
        "prm_steps_scored",
        "engine_calls",
        "answer_stops",
        "answer_stop_unspent",
        "prm_calls",
        "generator_flops",
        "prm_flops",
        "flops",
    )

    def __init__(
        self, rundir: RunDir, cfg: Config, total: int, lock: dict[str, Any] | None = None
    ) -> None:
        self.rundir = rundir
        self.started = time.perf_counter()
        self.info = rundir.read_info()
        for old in self.info.get("sessions", []):
            if old.get("status") == "running":  # its process died without a word
                old["status"] = "interrupted"
        self.me: dict[str, Any] = {
            "started_at": now(),
            "status": "running",
            **{k: 0 for k in self.COUNTERS},
            **provenance(),
        }
        if lock is not None:  # how the run directory was locked (status trusts a free lock)
            self.me["lock"] = lock
        self.info.setdefault("created_at", self.me["started_at"])
        self.info.setdefault("sessions", []).append(self.me)
        self.info.update(
            run_name=cfg.run_name or Path(cfg.out_dir).name,
            out_dir=str(rundir.path),
            overrides=list(cfg.overrides),
            problems={"total": total, "done": 0},
            results_version=RESULTS_VERSION,  # RunDir.prepare refuses to resume another
        )
        self._engine = self._prm = None
        self._base: dict[str, float] = {}
        self.signals: list[str] = []
        """Termination signals this session received (see `noting_signals`)."""
        self._write("running")

    def watch(self, engine_stats: Any, prm_stats: Any) -> None:
        """Count the engine's and PRM's work from now on (the engine may predate this run)."""
        self._engine, self._prm = engine_stats, prm_stats
        self._base = self._read_stats()

    def _read_stats(self) -> dict[str, float]:
        if self._engine is None:
            return {}
        e, p = self._engine, self._prm
        return {
            "generate_s": e.seconds,
            "generated_tokens": e.generated_tokens,
            "prompt_tokens": e.prompt_tokens,
            "cached_prompt_tokens": e.cached_prompt_tokens,
            "engine_calls": e.calls,
            "answer_stops": e.answer_stops,
            "answer_stop_unspent": e.answer_stop_unspent,
            "prm_s": p.seconds,
            "prm_tokens": p.tokens,
            "prm_steps_scored": p.steps_scored,
            "prm_calls": p.calls,
        }

    def describe(self, **fields: Any) -> None:
        """Facts about the run that hold for every session (how its FLOPs are counted)."""
        self.info.update(fields)

    def add(self, **amounts: float) -> None:
        for key, value in amounts.items():
            self.me[key] += value

    def record(self, **fields: Any) -> None:
        """Set run-level fields of run.json (written with the next update)."""
        self.info.update(fields)

    def progress(self, done: int) -> None:
        self.info["problems"]["done"] = done
        self._write("running")

    def close(self, status: str, error: BaseException | None = None) -> None:
        if error is not None:
            line = f"{type(error).__name__}: {error}".splitlines()[0]
            if self.signals:  # stopped from outside; the error is only how the stop surfaced
                line = f"{', '.join(self.signals)} received; then {line}"
            self.me["error"] = line[:500]
            if isinstance(error, KeyboardInterrupt | SystemExit) or self.signals:
                status = "interrupted"
        self.me["ended_at"] = now()
        if status == "finished":
            self.info["problems"]["done"] = self.info["problems"]["total"]
            self.info["finished_at"] = self.me["ended_at"]
        self._write(status)

    def _write(self, status: str) -> None:
        current = self._read_stats()
        for key, value in current.items():
            self.me[key] = value - self._base.get(key, 0)
        self.me["wall_s"] = round(time.perf_counter() - self.started, 3)
        self.me["status"] = status
        self.info["status"] = status
        self.info["error"] = self.me.get("error")
        totals = {k: 0.0 for k in (*self.COUNTERS, "wall_s")}
        for s in self.info["sessions"]:
            for key in totals:
                totals[key] += s.get(key, 0) or 0
        self.info["totals"] = {k: round(v, 3) for k, v in totals.items()}
        self.info["updated_at"] = now()
        write_json(self.rundir.info, self.info)


@contextlib.contextmanager
def noting_signals(session: Session) -> Iterator[None]:
    """Note SIGTERM and submitit's preemption signal while a run searches.

    A scheduler stops a job with them (scancel, preemption, time limit); the session then ends
    `interrupted` instead of `failed` with whatever error the dying engine raised, and the
    run resumes from its checkpoint when relaunched. A handler already installed (submitit's,
    which requeues the job) still runs; a default SIGTERM becomes SystemExit, so the session
    closes through the normal path before the process exits.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    names = {"SIGTERM", "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")}
    previous = {}
    for name in sorted(names):
        signum = getattr(signal, name, None)
        old = signal.getsignal(signum) if signum is not None else None
        if old is None or (signum != signal.SIGTERM and not callable(old)):
            continue  # not ours to watch: no Python-level handler to chain to
        previous[signum] = old
        signal.signal(signum, functools.partial(_on_signal, session, old))
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _on_signal(session: Session, previous: Any, signum: int, frame: Any) -> None:
    session.signals.append(signal.Signals(signum).name)
    log.warning("received %s", signal.Signals(signum).name)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        raise SystemExit(128 + signum)
