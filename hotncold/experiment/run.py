"""One experiment end to end: config -> problems -> search -> grading -> run directory.

`run(cfg)` is what the command line calls; `execute(cfg)` is the same without turning config
errors into an exit, for library use and tests. Resuming is the default: problems already in
`completions.jsonl` are kept and only the rest is searched.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from omegaconf import OmegaConf

from hotncold.config import Config, ConfigError, PRMConfig
from hotncold.data import Problem, load_problems
from hotncold.engine import kv_cache, vllm_engine
from hotncold.engine.prompts import build_prompt
from hotncold.engine.weights import check_model_path
from hotncold.evaluation.grading import Grader, extract_answer
from hotncold.evaluation.metrics import run_metrics
from hotncold.experiment import lock, preflight, terminal
from hotncold.experiment.compute import RunCosts, run_costs
from hotncold.experiment.naming import approach_label
from hotncold.experiment.progress import RunProgress
from hotncold.experiment.rundir import RunDir, append_jsonl, log_to, rewrite_jsonl, write_json
from hotncold.experiment.session import Session, noting_signals
from hotncold.experiment.shares import temperature_shares
from hotncold.experiment.validate import validate
from hotncold.hub import upload
from hotncold.prm import registry
from hotncold.prm.base import PRMCharge, aggregate
from hotncold.prm.registry import EnginePlan, build_prm, check_prm_weights
from hotncold.search import schedule
from hotncold.search.base import Completion, SearchContext
from hotncold.search.registry import build_approach
from hotncold.search.temperature import TemperaturePlan

log = logging.getLogger("hotncold")
"""The run's own voice: what it says reaches the terminal (`terminal.TerminalFilter`)."""
detail = logging.getLogger(__name__)
"""What only run.log needs."""


def run(cfg: Any, in_sweep: bool = False) -> dict[str, Any]:
    """Run one experiment from the command line: what the terminal shows is `terminal`'s (vLLM's
    output in run.log unless `verbose`), and the run ends with its results table (one line per
    job `in_sweep`, whose analysis has the tables). A configuration mistake exits with one line
    naming the fix."""
    try:
        cfg = to_config(cfg)
        terminal.set_verbose(cfg.verbose)
        metrics = execute(cfg)
    except ConfigError as error:
        raise SystemExit(f"hotncold: error: {error}") from None
    info = RunDir(cfg.out_dir).read_info()
    show = terminal.results_line if in_sweep else terminal.results_table
    log.info("%s", show(cfg, metrics, info))
    return metrics


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
                session.record(temperature_shares=temperature_shares(records, cfg.temperature))
                metrics = run_metrics(records, cfg)
                write_json(rundir.metrics, metrics)
            session.close("finished")
        except BaseException as error:
            session.close("failed", error)
            raise
        detail.info("done:\n%s", terminal.results_table(cfg, metrics, rundir.read_info()))
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
        # on the CPU the generator's KV cache holds a whole batch (GPU shares: the plan's)
        batch = kv_cache.Batch(
            problems=min(cfg.batch_size, len(todo)),
            n=cfg.n,
            prompt_tokens=kv_cache.prompt_tokens_bound(cfg.prompt, [p.problem for p in todo]),
            open_problems=min(open_problems(cfg), len(todo)),
        )
        engine_cfg = registry.sized_for_batch(engines.model, engines.prm, batch)
        fresh = not vllm_engine.has_engine(engine_cfg)
        if fresh:
            kv = engine_cfg.cpu_kv_cache_gib
            log.info(
                "starting vLLM for %s%s; its output goes to %s",
                cfg.model.name,
                f" (KV cache {kv:g} GiB)" if kv is not None else "",
                rundir.log,
            )
        engine = vllm_engine.get_engine(engine_cfg)
        prm = build_prm(engines.prm, engine=engine, model=engines.model, prompt=cfg.prompt)
        session.add(engine_start_s=time.perf_counter() - started)
        if fresh:
            log.info("engine ready in %s", terminal.duration(time.perf_counter() - started))
        session.watch(engine.stats, prm.stats)
        engine.stats.accounts.clear()  # a reused engine: nothing of an earlier run is charged
        costs = run_costs(cfg, engine, prm)
        session.describe(compute=costs.describe())
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
            logprobs=cfg.output.logprobs,
        )
        grader = Grader()
        with RunProgress(
            engine,
            label=f"{approach_label(asdict(cfg))} {ctx.plan.tag()}",
            problems=len(problems),
            done=len(finished),
            budget_per_problem=cfg.n * cfg.model.max_tokens,
        ) as bar:
            for solved in solve_in_groups(cfg, approach, ctx, todo, batch.problems):
                started = time.perf_counter()
                records = [
                    grade_problem(p, q, cs, grader, cfg.prm.agg_strategy) for p, q, cs in solved
                ]
                session.add(grade_s=time.perf_counter() - started)
                group = [p for p, _, _ in solved]
                for record, spent in zip(records, _charges(group, engine, prm, costs)):
                    record["compute"] = spent
                    session.add(
                        **{k: spent[k] or 0 for k in ("generator_flops", "prm_flops", "flops")}
                    )
                append_jsonl(rundir.completions, records)
                for text in {p.problem for p in group}:
                    prm.forget(text)
                for r in records:
                    finished[r["uid"]] = r
                shares = temperature_shares(finished.values(), cfg.temperature)
                session.record(temperature_shares=shares)
                session.progress(len(finished))
                bar.batch_done(len(group))
        in_problem_order(rundir, problems)
    return [finished[p.uid] for p in problems]


def in_problem_order(rundir: RunDir, problems: Sequence[Problem]) -> None:
    """A finished run's completions.jsonl in the dataset's order. A windowed search records
    each problem as it ends, so the file is written in the order the problems ended, which
    differs between an uninterrupted run and a resumed one; put in the order a run of batches
    writes, the file of a config is the same however its run went (rewritten at once, only
    when out of order; records of other problems keep their place after these)."""
    records = rundir.finished_records()
    rank = {p.uid: i for i, p in enumerate(problems)}
    ordered = sorted(records, key=lambda r: rank.get(r["uid"], len(rank)))  # stable
    if [r["uid"] for r in ordered] != [r["uid"] for r in records]:
        rewrite_jsonl(rundir.completions, ordered)


def windowed(cfg: Config) -> bool:
    """The run's problems go through `schedule.window` (`solve_in_groups`)."""
    return cfg.approach.scheduler == "async" and cfg.approach.name in WINDOWED


WINDOWED = ("beam_search", "dvts")
"""Approaches whose searches are per problem (`search`): beam search and DVTS."""


def open_problems(cfg: Config) -> int:
    """How many problems a run may have open at once."""
    return cfg.approach.open_batches * cfg.batch_size if windowed(cfg) else cfg.batch_size


Solved = list[tuple[Problem, str, list[Completion]]]
"""Problems with their prompts and completions, recorded together."""


def solve_in_groups(
    cfg: Config, approach: Any, ctx: SearchContext, todo: Sequence[Problem], batch: int
) -> Iterator[Solved]:
    """The problems of `todo` solved, in groups to record (grade, charge, append) together.

    Under `approach.scheduler=async` an approach with a per-problem `search` (beam search,
    DVTS) runs as a window (`schedule.window`): up to `batch * n` samples in flight, what the
    KV cache was sized for, and up to `approach.open_batches * batch` problems open, the next
    problem starting as the engine has room; each problem is recorded as soon as it ends, or
    with the problems open beside it that share its text (they share its PRM charge: identical
    pairs are scored once for all of them). Otherwise: `cfg.batch_size` problems per `solve`
    call, recorded as a batch."""

    def prompt(p: Problem) -> str:
        return build_prompt(ctx.engine, cfg.prompt, cfg.model, p.problem)

    if not windowed(cfg):
        for problems in _chunks(todo, cfg.batch_size):
            prompts = [prompt(p) for p in problems]
            yield list(zip(problems, prompts, approach.solve(problems, prompts, ctx)))
        return
    prompts: dict[int, str] = {}
    open_texts: Counter[str] = Counter()
    held: dict[str, Solved] = {}

    def searches() -> Iterator[schedule.Search[list[Completion]]]:
        for i, p in enumerate(todo):  # asked for one at a time, as the window has room
            prompts[i] = prompt(p)
            open_texts[p.problem] += 1
            yield approach.search(p, prompts[i], ctx)

    for i, completions in schedule.window(
        schedule.streaming_engine(ctx),
        ctx.prm,
        searches(),
        sequences=batch * cfg.n,
        open_limit=cfg.approach.open_batches * batch,  # `open_problems` of a whole batch
        exclusive=schedule.prm_on_engine(ctx),
    ):
        p = todo[i]
        held.setdefault(p.problem, []).append((p, prompts.pop(i), completions))
        open_texts[p.problem] -= 1
        if not open_texts[p.problem]:
            del open_texts[p.problem]
            yield held.pop(p.problem)


def _charges(
    batch: Sequence[Problem], engine: Any, prm: Any, costs: RunCosts
) -> list[dict[str, Any]]:
    """Each problem's compute (tokens and FLOPs) in the batch just solved.

    The engine charges requests to the problem uid they name; the PRM charges the problem text
    it scored. Problems that share a text (a dataset with duplicates) share its PRM charge
    evenly: identical (problem, steps) pairs are scored once for all of them.
    """
    same: dict[str, list[Problem]] = {}
    for p in batch:
        same.setdefault(p.problem, []).append(p)
    prm_share: dict[str, PRMCharge] = {}
    for text, problems in same.items():
        whole, k = prm.stats.take(text), len(problems)
        for i, p in enumerate(problems):
            prm_share[p.uid] = PRMCharge(
                whole.tokens // k + (i < whole.tokens % k), whole.steps // k + (i < whole.steps % k)
            )
    return [costs.problem(engine.stats.take(p.uid), prm_share[p.uid]) for p in batch]


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
