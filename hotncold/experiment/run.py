"""One experiment end to end: config -> problems -> search -> grading -> run directory.

`run(cfg)` is what the command line calls; `execute(cfg)` is the same without turning config
errors into an exit, for library use and tests. Resuming is the default: problems already in
`completions.jsonl` are kept and only the rest is searched.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hotncold.config import Config, ConfigError, validate
from hotncold.data import Problem, load_problems
from hotncold.evaluation.grading import Grader, extract_answer
from hotncold.evaluation.metrics import metrics_from_records
from hotncold.experiment.rundir import RunDir, append_jsonl, log_to, now, provenance, write_json
from hotncold.hub import upload as hub
from hotncold.prm.base import aggregate
from hotncold.search.base import Completion

log = logging.getLogger("hotncold")


def run(cfg: Any) -> dict[str, Any]:
    """Run one experiment; a configuration mistake exits with one line naming the fix."""
    try:
        return execute(cfg)
    except ConfigError as error:
        raise SystemExit(f"hotncold: error: {error}") from None


def to_config(cfg: Any) -> Config:
    """A typed `Config` from a Config, a Hydra/OmegaConf config, or a plain dict."""
    if isinstance(cfg, Config):
        return cfg
    from omegaconf import OmegaConf

    if not OmegaConf.is_config(cfg):
        cfg = OmegaConf.create(cfg)
    merged = OmegaConf.merge(OmegaConf.structured(Config), cfg)
    return OmegaConf.to_object(merged)


def execute(cfg: Any) -> dict[str, Any]:
    """Run (or resume) one experiment and return its metrics."""
    cfg = to_config(cfg)
    validate(cfg)
    hub.preflight(cfg.output)  # when pushing: no network or token fails now, not after the search
    problems = load_problems(cfg.dataset)
    rundir = RunDir(cfg.out_dir)
    rundir.prepare(cfg)
    with log_to(rundir.log):
        session = Session(rundir, cfg, total=len(problems))
        try:
            with _noting_signals(session):
                records = _search(cfg, problems, rundir, session)
                metrics = metrics_from_records(
                    records, cfg.n, cfg.metrics.num_subsets, cfg.metrics.seed
                )
                metrics["agg_strategy"] = cfg.prm.agg_strategy
                write_json(rundir.metrics, metrics)
            session.close("finished")
        except BaseException as error:
            session.close("failed", error)
            raise
        overall = metrics["overall"]
        log.info(
            "done: %d problems; at n=%d naive %.3f weighted %.3f majority %.3f pass %.3f -> %s",
            len(records),
            cfg.n,
            *(overall[m][str(cfg.n)] for m in ("naive", "weighted", "majority", "pass")),
            rundir.path,
        )
        if cfg.output.push_to_hub:
            hub.push_and_record(rundir, cfg.output)  # a failure is recorded, the run stays
        return metrics


def _search(cfg: Config, problems: list[Problem], rundir: RunDir, session: Session) -> list[dict]:
    wanted = {p.uid for p in problems}
    finished = {r["uid"]: r for r in rundir.finished_records() if r["uid"] in wanted}
    todo = [p for p in problems if p.uid not in finished]
    if finished:
        log.info(
            "resuming: %d of %d problems already finished in %s",
            len(finished),
            len(problems),
            rundir.path,
        )
    if todo:
        from hotncold.engine.vllm_engine import build_prompt, get_engine
        from hotncold.prm.registry import build_prm, generator_config, preflight
        from hotncold.search.base import SearchContext
        from hotncold.search.registry import build_approach
        from hotncold.search.temperature import TemperaturePlan

        preflight(cfg.prm)  # an unreachable PRM server fails here, before the model loads
        started = time.perf_counter()
        engine = get_engine(generator_config(cfg.model, cfg.prm))  # memory split with the PRM
        prm = build_prm(cfg.prm, engine=engine, model=cfg.model)
        session.add(engine_start_s=time.perf_counter() - started)
        session.watch(engine.stats, prm.stats)
        approach = build_approach(cfg.approach.name)
        ctx = SearchContext(
            engine=engine,
            prm=prm,
            plan=TemperaturePlan.from_config(cfg.temperature),
            model=cfg.model,
            approach=cfg.approach,
            n=cfg.n,
            seed=cfg.seed,
            agg_strategy=cfg.prm.agg_strategy,
        )
        grader = Grader()
        with tqdm(
            total=len(problems),
            initial=len(finished),
            desc=cfg.approach.name,
            unit="problem",
            dynamic_ncols=True,
        ) as bar:
            for batch in _chunks(todo, cfg.batch_size):
                prompts = [build_prompt(engine, cfg.model, p.problem) for p in batch]
                completions = approach.solve(batch, prompts, ctx)
                started = time.perf_counter()
                records = [
                    grade_problem(p, prompt, cs, grader, cfg.prm.agg_strategy)
                    for p, prompt, cs in zip(batch, prompts, completions)
                ]
                session.add(grade_s=time.perf_counter() - started)
                append_jsonl(rundir.completions, records)
                prm.reset()
                for r in records:
                    finished[r["uid"]] = r
                session.progress(len(finished))
                bar.update(len(batch))
    return [finished[p.uid] for p in problems]


def grade_problem(
    problem: Problem,
    prompt: str,
    completions: Sequence[Completion],
    grader: Grader,
    agg_strategy: str,
) -> dict[str, Any]:
    """The completions.jsonl record of one problem: its row and every graded completion."""
    answers = [extract_answer(c.text) for c in completions]
    clusters = grader.cluster(answers)
    out = []
    for c, answer, cluster in zip(completions, answers, clusters):
        record = c.to_json()
        record.update(
            answer=answer,
            cluster=cluster,
            correct=grader.is_correct(answer, problem.answer),
            score=aggregate(c.step_scores, agg_strategy),
        )
        out.append(record)
    return {"uid": problem.uid, "problem": problem.to_json(), "prompt": prompt, "completions": out}


def _chunks(items: Sequence[Problem], size: int) -> Iterator[list[Problem]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class Session:
    """This process's share of a run, kept in run.json next to earlier sessions' shares."""

    COUNTERS = (
        "engine_start_s",
        "generate_s",
        "prm_s",
        "grade_s",
        "generated_tokens",
        "prompt_tokens",
        "prm_tokens",
        "prm_steps_scored",
        "engine_calls",
        "prm_calls",
    )

    def __init__(self, rundir: RunDir, cfg: Config, total: int) -> None:
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
        self.info.setdefault("created_at", self.me["started_at"])
        self.info.setdefault("sessions", []).append(self.me)
        self.info.update(
            run_name=cfg.run_name or Path(cfg.out_dir).name,
            out_dir=str(rundir.path),
            overrides=list(cfg.overrides),
            problems={"total": total, "done": 0},
        )
        self._engine = self._prm = None
        self._base: dict[str, float] = {}
        self.signals: list[str] = []
        """Termination signals this session received (see `_noting_signals`)."""
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
            "engine_calls": e.calls,
            "prm_s": p.seconds,
            "prm_tokens": p.tokens,
            "prm_steps_scored": p.steps_scored,
            "prm_calls": p.calls,
        }

    def add(self, **amounts: float) -> None:
        for key, value in amounts.items():
            self.me[key] += value

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
def _noting_signals(session: Session) -> Iterator[None]:
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
