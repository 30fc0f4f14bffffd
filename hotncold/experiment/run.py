"""One experiment end to end: config -> problems -> search -> grading -> run directory.

`run(cfg)` is what the command line calls; `execute(cfg)` is the same without turning config
errors into an exit, for library use and tests. Resuming is the default: problems already in
`completions.jsonl` are kept and only the rest is searched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from omegaconf import OmegaConf
from tqdm import tqdm

from hotncold.config import Config, ConfigError, PRMConfig
from hotncold.data import Problem, load_problems
from hotncold.engine import vllm_engine
from hotncold.engine.prompts import build_prompt
from hotncold.engine.weights import check_model_path
from hotncold.evaluation.grading import Grader, extract_answer
from hotncold.evaluation.metrics import metrics_from_records
from hotncold.experiment import lock, preflight
from hotncold.experiment.rundir import RunDir, append_jsonl, log_to, write_json
from hotncold.experiment.session import Session, noting_signals
from hotncold.experiment.validate import validate
from hotncold.hub import upload
from hotncold.prm import registry
from hotncold.prm.base import aggregate
from hotncold.prm.registry import EnginePlan, build_prm, check_prm_weights
from hotncold.search.base import Completion, SearchContext
from hotncold.search.registry import build_approach
from hotncold.search.temperature import TemperaturePlan

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
    if not OmegaConf.is_config(cfg):
        cfg = OmegaConf.create(cfg)
    return OmegaConf.to_object(registry.typed_merge(Config(prm=PRMConfig()), cfg))


def execute(cfg: Any) -> dict[str, Any]:
    """Run (or resume) one experiment and return its metrics."""
    cfg = to_config(cfg)
    validate(cfg)
    preflight.check_machine(cfg)  # a supported vLLM; offline, every hub file it needs cached
    # a missing folder or a bad hub id, in one line before anything loads
    check_model_path(cfg.model.path, "model.path", cfg.model.engine_kwargs.get("download_dir"))
    check_prm_weights(cfg.prm, cfg.model)
    # context lengths fitted to the models, GPU shares sized from their weights
    engines = preflight.plan(cfg.model, cfg.prm)
    upload.preflight(cfg.output)  # pushing: no network or token fails now, not after the search
    problems = load_problems(cfg.dataset)
    rundir = RunDir(cfg.out_dir)
    # One writer per run directory: a second process is refused here, before it reads or
    # writes anything there (a requeued start of the same Slurm job waits for its earlier one).
    with lock.locked(rundir.path, "run", cfg.cluster.requeue_lock_wait_s) as held:
        return _execute(cfg, engines, problems, rundir, held)


def _execute(
    cfg: Config, engines: EnginePlan, problems: list[Problem], rundir: RunDir, held: lock.Lock
) -> dict:
    rundir.prepare(cfg)
    with log_to(rundir.log):
        session = Session(rundir, cfg, total=len(problems), lock=held.describe())
        try:
            with noting_signals(session):
                records = _search(cfg, engines, problems, rundir, session)
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
            upload.push_and_record(rundir, cfg.output)  # a failure is recorded, the run stays
        return metrics


def _search(
    cfg: Config, engines: EnginePlan, problems: list[Problem], rundir: RunDir, session: Session
) -> list[dict]:
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
        registry.preflight(cfg.prm)  # an unreachable PRM server fails here, before loading
        started = time.perf_counter()
        engine = vllm_engine.get_engine(engines.model)
        prm = build_prm(engines.prm, engine=engine, model=engines.model)
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
