"""Generate once, score many: the stored completions of finished runs scored by another PRM.

`rescore(path, cfg)` finds every finished run at or below `path` (a run directory or a sweep
folder) and writes one derived run per source run into `cfg.out_dir` (default: `rescored/`
next to them). A derived run is an ordinary run directory: its config is the source's with
`prm` replaced by the scoring PRM and `source_prm` set to the PRM the source was made with
(`naming.run_name` names it `<source prm>-rescored-<prm>`), its completions are the source's
with every step scored again and `score` re-aggregated by the new `prm.agg_strategy` (texts,
answers and grades unchanged: the same samples), and its metrics are recomputed. run.json
records `rescored_from` (the source run's directory, name and config hash, and `samples`: the
config hash of the run that generated the completions), `guided_by` (the
PRM that steered the search; null under Best-of-N) and `scored_by`.

Work is batched across runs: `cfg.batch_size` records go to the PRM in one call, one
problem's records of every run side by side, so the PRM reads a problem's text once for all
its runs where its engine caches prefixes, and identical (problem, steps) prefixes are scored
once through the PRM's own prefix cache (`prm/base.py`: a beam search's completions share
their early steps). Each derived run
is checkpointed after every batch (completions.jsonl, run.json) and holds its lock
(`experiment/lock.py`) for the whole re-score: a second re-score into it is refused, and a
rerun resumes it, scoring only the problems not yet there.

Compute of a derived record: the source's generation (`prompt_tokens`, `generated_tokens`,
`generator_flops`), plus under beam search and DVTS the guiding PRM's (`guide_prm_tokens`,
`guide_prm_flops`), plus the scoring PRM's (`prm_tokens`, `prm_flops`); `flops` sums them, what
the derived configuration costs from scratch. run.json's totals count what the re-score itself
did (PRM work only; `generated_tokens` 0).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotncold.config import Config, ConfigError, PRMConfig, RescoreConfig
from hotncold.engine import hf_cache, kv_cache, machine, vllm_engine
from hotncold.engine.requests import Charge
from hotncold.engine.weights import check_model_path
from hotncold.evaluation.metrics import run_metrics
from hotncold.experiment import lock, preflight
from hotncold.experiment.compute import RunCosts, run_costs
from hotncold.experiment.naming import config_hash, prm_roles, result_config, run_name
from hotncold.experiment.run import to_config
from hotncold.experiment.rundir import (
    RunDir,
    append_jsonl,
    log_to,
    read_json,
    read_jsonl,
    write_json,
)
from hotncold.experiment.session import Session, noting_signals
from hotncold.experiment.shares import temperature_shares
from hotncold.prm import registry
from hotncold.prm.base import PRM, PRMCharge, aggregate
from hotncold.prm.registry import build_prm, check_prm, check_prm_weights
from hotncold.prm.self_certainty import stored_step_scores

log = logging.getLogger("hotncold")

RESCORED = "rescored"
"""The folder derived runs go to by default, beside the runs they come from."""


@dataclass
class Source:
    """A finished run to re-score."""

    path: Path
    cfg: Config
    info: dict[str, Any]
    records: list[dict[str, Any]]


@dataclass
class Derived:
    """One derived run being written: its source, config and what is already scored."""

    source: Source
    cfg: Config
    rundir: RunDir
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    session: Session | None = None

    @property
    def todo(self) -> list[dict[str, Any]]:
        return [r for r in self.source.records if r["uid"] not in self.done]


def default_out(path: Path) -> Path:
    """`<sweep dir>/rescored`, or `<parent>/rescored` for a run directory."""
    path = Path(path)
    return (path.parent if (path / "run.json").is_file() else path) / RESCORED


def find_sources(path: Path, exclude: Path | None = None) -> tuple[list[Source], list[str]]:
    """Finished runs at or below `path` (never below `exclude`, where derived runs go), and one
    line per run directory left out (unfinished, unreadable)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; give a run directory or a sweep folder")
    infos = [path / "run.json"] if (path / "run.json").is_file() else sorted(path.rglob("run.json"))
    sources, skipped = [], []
    for info_path in infos:
        run = info_path.parent
        if exclude is not None and run.resolve().is_relative_to(Path(exclude).resolve()):
            continue
        info = read_json(info_path)
        status = info.get("status")
        if status != "finished" or not (run / "config.yaml").is_file():
            skipped.append(f"{run}: status {status!r}, not finished")
            continue
        try:
            cfg = to_config(yaml.safe_load((run / "config.yaml").read_text()))
            records = read_jsonl(run / "completions.jsonl")  # not ours: never repaired here
        except Exception as error:  # OmegaConf raises several types; one line names the file
            skipped.append(f"{run}: unreadable ({str(error).splitlines()[0]})")
            continue
        sources.append(Source(run, cfg, info, records))
    if not sources:
        raise ConfigError(
            f"no finished runs under {path} ({len(skipped)} left out); point at a run directory "
            "(a folder with run.json) or a sweep folder holding finished runs"
        )
    return sources, skipped


def source_prm_of(cfg: Config) -> dict[str, Any]:
    """The PRM a run's completions were made with: a re-scored run's own source PRM (scores
    change, samples do not), else its `prm`, without the fields that never change results."""
    if cfg.source_prm is not None:
        return dict(cfg.source_prm)
    prm = dataclasses.asdict(cfg.prm)
    return result_config({"prm": prm})["prm"]


def samples_of(cfg: Config, info: dict[str, Any]) -> str:
    """Which generation a run's completions come from: the config hash of the run that
    generated them (a re-scored run's source's, recorded as `rescored_from.samples`). Runs
    with the same `samples` hold the same completions: the analyzer pairs them."""
    recorded = (info.get("rescored_from") or {}).get("samples")
    return recorded or config_hash(dataclasses.asdict(cfg))


def derive(source: Config, prm: PRMConfig, out: Path) -> Config:
    """The derived run's config: the source's, scored by `prm`, in `out/<its name>`."""
    cfg = copy.deepcopy(source)
    cfg.prm = copy.deepcopy(prm)
    cfg.source_prm = source_prm_of(source)
    cfg.overrides = []
    cfg.run_name = run_name(dataclasses.asdict(cfg))
    cfg.out_dir = str(Path(out) / cfg.run_name)
    return cfg


def rescore(path: str | Path, cfg: RescoreConfig) -> list[Derived]:
    """Re-score every finished run at or below `path` with `cfg.prm` (see the module doc)."""
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size}: set batch_size=1 or more")
    out = Path(cfg.out_dir) if cfg.out_dir else default_out(Path(path))
    sources, skipped = find_sources(Path(path), exclude=out)
    for line in skipped:
        log.warning("left out %s", line)
    jobs = [Derived(s, derive(s.cfg, cfg.prm, out), RunDir("")) for s in sources]
    names: dict[str, Path] = {}
    for job in jobs:
        job.rundir = RunDir(job.cfg.out_dir)
        if job.cfg.run_name in names:  # e.g. a sweep's shards and their merged run
            raise ConfigError(
                f"{job.source.path} and {names[job.cfg.run_name]} would both be re-scored into "
                f"{job.rundir.path} (the same config); re-score one of them (give its folder)"
            )
        names[job.cfg.run_name] = job.source.path
    # every PRM rule against every source's generator, before anything loads
    for job in jobs:
        check_prm(job.cfg.prm, job.cfg.model)
    groups: dict[str, list[Derived]] = {}
    for job in jobs:  # one PRM per generator and prompt (some PRMs read them)
        key = yaml.safe_dump(
            [dataclasses.asdict(job.cfg.model), dataclasses.asdict(job.cfg.prompt)]
        )
        groups.setdefault(key, []).append(job)
    for group in groups.values():
        stored = reads_stored_logprobs(group)
        engines = None if stored else _preflight(group[0].cfg)
        with contextlib.ExitStack() as stack:
            for job in group:
                held = stack.enter_context(lock.locked(job.rundir.path, "rescore"))
                _open(job, held)
            _score_group(group, engines, cfg.batch_size)  # engines None: stored logprobs
    return jobs


def reads_stored_logprobs(group: list[Derived]) -> bool:
    """prm=self_certainty on runs that stored their log-probabilities (`output.logprobs`):
    scored from them, with no engine (`self_certainty.stored_step_scores`)."""
    return group[0].cfg.prm.name == "self_certainty" and all(
        c.get("token_logprobs") is not None and c.get("token_ends") is not None
        for job in group
        for r in job.source.records
        for c in r["completions"]
    )


def _preflight(cfg: Config) -> registry.EnginePlan:
    """What the scoring PRM needs, checked before anything loads: a supported vLLM (unless it
    is model-free), its weights (offline: in the cache), and its engine's plan. Nothing of the
    generator is needed unless the PRM reads the generator (then it runs on its engine)."""
    kind = registry.KINDS[cfg.prm.name]
    on_generator = registry.shares_generator(cfg.prm, cfg.model)
    if not kind.model_free and cfg.prm.server_url is None:
        machine.check_vllm()
    needs = registry.hub_needs(cfg.prm, cfg.model)
    if on_generator and hf_cache.is_hub_id(cfg.model.path):
        needs.append(hf_cache.Need(cfg.model.path, "model", "model.path"))
    hf_cache.check_cached(needs, preflight.prefetch_command([f"prm={cfg.prm.name}"]))
    if on_generator:
        check_model_path(cfg.model.path, "model.path", cfg.model.engine_kwargs.get("download_dir"))
    check_prm_weights(cfg.prm, cfg.model)
    return registry.plan_engines(
        cfg.model, cfg.prm, preflight.card_bytes(), with_generator=on_generator
    )


def _open(job: Derived, held: lock.Lock) -> None:
    """Prepare the derived run's folder (refusing one of another config) and its session."""
    job.rundir.prepare(job.cfg)
    wanted = {r["uid"] for r in job.source.records}
    job.done = {r["uid"]: r for r in job.rundir.finished_records() if r["uid"] in wanted}
    job.session = Session(job.rundir, job.cfg, total=len(job.source.records), lock=held.describe())
    guided_by, scored_by = prm_roles(dataclasses.asdict(job.cfg))
    job.session.record(
        rescored_from={
            "run_dir": str(job.source.path),
            "run_name": job.source.cfg.run_name or job.source.path.name,
            "config_hash": config_hash(dataclasses.asdict(job.source.cfg)),
            "samples": samples_of(job.source.cfg, job.source.info),
        },
        guided_by=guided_by,
        scored_by=scored_by,
    )
    if job.done:
        log.info(
            "resuming %s: %d of %d problems already re-scored",
            job.rundir.path,
            len(job.done),
            len(job.source.records),
        )
    job.session.progress(len(job.done))


def _score_group(
    group: list[Derived], engines: registry.EnginePlan | None, batch_size: int
) -> None:
    """Score every unfinished problem of the group's runs, `batch_size` records per call; with
    no `engines`, from the log-probabilities the runs stored (`reads_stored_logprobs`)."""
    first = group[0].cfg
    with contextlib.ExitStack() as stack:
        for job in group:
            stack.enter_context(log_to(job.rundir.log))
        try:
            with contextlib.ExitStack() as signals:
                for job in group:
                    signals.enter_context(noting_signals(job.session))
                queue = _interleaved(group)
                if queue:
                    scorer = (
                        _Stored() if engines is None else _build(first, engines, queue, batch_size)
                    )
                    for job in group:
                        job.session.describe(compute=scorer.costs.describe())
                        job.session.record(scored_from=scorer.source)
                    for start in range(0, len(queue), batch_size):
                        _score_batch(queue[start : start + batch_size], scorer)
                for job in group:
                    _finish(job)
        except BaseException as error:
            for job in group:
                if job.session.info.get("status") == "running":
                    job.session.close("failed", error)
            raise


def _interleaved(group: list[Derived]) -> list[tuple[Derived, dict[str, Any]]]:
    """Every unfinished (run, record), problem by problem: one problem's records in every run
    side by side, so that they go to the PRM in one call (its problem text, a prefix of every
    input, is then read once where the PRM's engine caches prefixes)."""
    first_seen: dict[str, int] = {}
    pairs = [(job, r) for job in group for r in job.todo]
    for i, (_, r) in enumerate(pairs):
        first_seen.setdefault(r["problem"]["problem"], i)
    return sorted(pairs, key=lambda pair: first_seen[pair[1]["problem"]["problem"]])


@dataclass
class _Engine:
    """Scores through the PRM (its model, or the generator's engine)."""

    prm: PRM
    costs: RunCosts
    source: str = "engine"

    def score(self, batch: Sequence[tuple[Derived, dict[str, Any]]]) -> tuple[list, list]:
        """Step scores of every completion of `batch`, and each record's PRM charge."""
        pairs = [(r["problem"]["problem"], c["steps"]) for _, r in batch for c in r["completions"]]
        scores = self.prm.score(pairs)
        charges = _charges(batch, self.prm)
        self.prm.reset()
        return scores, charges


@dataclass
class _Stored:
    """prm=self_certainty from the log-probabilities the runs stored: no model runs."""

    costs: RunCosts = field(
        default_factory=lambda: RunCosts(None, None, prm_model_free=True, prm_logits="none")
    )
    source: str = "stored logprobs"

    def score(self, batch: Sequence[tuple[Derived, dict[str, Any]]]) -> tuple[list, list]:
        scores, charges = [], []
        for _, record in batch:
            steps = 0
            for c in record["completions"]:
                scores.append(
                    stored_step_scores(c["text"], c["steps"], c["token_logprobs"], c["token_ends"])
                )
                steps += len(c["steps"])
            charges.append(PRMCharge(tokens=0, steps=steps))
        return scores, charges


def _build(cfg: Config, engines: registry.EnginePlan, queue: list, batch_size: int) -> _Engine:
    """The scoring PRM (on the generator's engine when it reads the generator) and its costs."""
    registry.preflight(cfg.prm)
    engine = None
    if registry.shares_generator(cfg.prm, cfg.model):
        texts = [r["problem"]["problem"] for _, r in queue]
        batch = kv_cache.Batch(
            problems=min(batch_size, len(queue)),
            n=cfg.n,
            prompt_tokens=kv_cache.prompt_tokens_bound(cfg.prompt, texts),
        )
        engine = vllm_engine.get_engine(registry.sized_for_batch(engines.model, engines.prm, batch))
    prm = build_prm(engines.prm, engine=engine, model=engines.model, prompt=cfg.prompt)
    return _Engine(prm, run_costs(cfg, engine, prm))


def _score_batch(
    batch: Sequence[tuple[Derived, dict[str, Any]]], scorer: _Engine | _Stored
) -> None:
    started = time.perf_counter()
    all_scores, charges = scorer.score(batch)
    seconds = time.perf_counter() - started
    scores = iter(all_scores)
    costs = scorer.costs
    completions = sum(len(r["completions"]) for _, r in batch)
    by_job: dict[int, list[dict[str, Any]]] = {}
    for (job, record), charge in zip(batch, charges):
        new = rescored_record(record, [next(scores) for _ in record["completions"]], job.cfg)
        new["compute"] = _compute(
            record, charge, costs, guided=prm_roles(dataclasses.asdict(job.cfg))[0] is not None
        )
        by_job.setdefault(id(job), []).append(new)
        share = len(record["completions"]) / max(1, completions)
        job.session.add(
            prm_s=seconds * share,
            prm_tokens=charge.tokens,
            prm_steps_scored=charge.steps,
            prm_flops=new["compute"]["prm_flops"] or 0,
            flops=new["compute"]["prm_flops"] or 0,
        )
    jobs = {id(job): job for job, _ in batch}
    for key, records in by_job.items():
        job = jobs[key]
        append_jsonl(job.rundir.completions, records)
        for r in records:
            job.done[r["uid"]] = r
        job.session.progress(len(job.done))
    log.info(
        "re-scored %d problems (%d completions) of %d runs",
        len(batch),
        completions,
        len(by_job),
    )


def rescored_record(record: dict[str, Any], step_scores: list[list[float]], cfg: Config) -> dict:
    """The source record with each completion's steps scored anew and its score re-aggregated
    (`cfg.prm.agg_strategy`); texts, answers and grades are the same samples'."""
    out = copy.deepcopy(record)
    for c, scores in zip(out["completions"], step_scores):
        c["step_scores"] = [float(s) for s in scores]
        c["score"] = aggregate(c["step_scores"], cfg.prm.agg_strategy)
    return out


def _charges(batch: Sequence[tuple[Derived, dict[str, Any]]], prm: PRM) -> list[PRMCharge]:
    """Each record's share of the PRM's work: the PRM charges problem texts; records of one
    text (the same problem in several runs) share its charge evenly (identical pairs are
    scored once for all of them)."""
    same: dict[str, list[int]] = {}
    for i, (_, record) in enumerate(batch):
        same.setdefault(record["problem"]["problem"], []).append(i)
    out = [PRMCharge()] * len(batch)
    for text, members in same.items():
        whole, k = prm.stats.take(text), len(members)
        for j, i in enumerate(members):
            out[i] = PRMCharge(
                whole.tokens // k + (j < whole.tokens % k), whole.steps // k + (j < whole.steps % k)
            )
    return out


def _compute(record: dict[str, Any], charge: PRMCharge, costs: RunCosts, guided: bool) -> dict:
    """The derived record's compute (see the module doc)."""
    source = record.get("compute") or {}
    scoring = costs.problem(Charge(), charge)  # a re-score generates nothing
    out = {
        "prompt_tokens": source.get("prompt_tokens"),
        "generated_tokens": source.get("generated_tokens"),
        "generator_flops": source.get("generator_flops"),
        "prm_tokens": scoring["prm_tokens"],
        "prm_steps_scored": scoring["prm_steps_scored"],
        "prm_flops": scoring["prm_flops"],
    }
    parts = [out["generator_flops"], out["prm_flops"]]
    if guided:  # the guiding PRM's work made these samples
        out["guide_prm_tokens"] = source.get("prm_tokens")
        out["guide_prm_flops"] = source.get("prm_flops")
        parts.append(out["guide_prm_flops"])
    out["flops"] = None if any(p is None for p in parts) else float(sum(parts))
    return out


def _finish(job: Derived) -> None:
    records = [job.done[r["uid"]] for r in job.source.records]
    cfg = job.cfg
    metrics = run_metrics(records, cfg)
    write_json(job.rundir.metrics, metrics)
    job.session.record(temperature_shares=temperature_shares(records, cfg.temperature))
    job.session.close("finished")
    log.info("re-scored %s -> %s", job.source.path, job.rundir.path)
