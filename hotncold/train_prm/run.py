"""One PRM training run end to end: data -> training -> saved model -> evaluation.

Every stage leaves its result in the run directory and is skipped when found there, so
rerunning the same command resumes: sampled data is not sampled again, training continues from
its last checkpoint, and a finished run only re-evaluates.

    config.yaml             the resolved config
    data/train.jsonl        stepwise examples (TRL format) used for training
    data/eval.jsonl         the held-out split
    checkpoints/            Trainer checkpoints (resumable)
    model/                  the trained PRM: AutoModelForTokenClassification + tokenizer +
                            hotncold_prm.json (step separator); load it with prm=trl
    eval.json               step-level and ProcessBench-style metrics on data/eval.jsonl
    run.json                command, git SHA, packages, timings, status
    run.log                 the log
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hotncold.config import ConfigError
from hotncold.engine import vllm_engine
from hotncold.engine.weights import check_model_path
from hotncold.experiment import lock
from hotncold.experiment.rundir import (
    RunDir,
    append_jsonl,
    log_to,
    now,
    provenance,
    read_jsonl,
    write_json,
)
from hotncold.train_prm import data
from hotncold.train_prm.config import TrainPRMConfig, validate
from hotncold.train_prm.evaluate import score, step_probabilities
from hotncold.train_prm.trainer import train

log = logging.getLogger("hotncold.train_prm")


def run(cfg: Any) -> dict[str, Any]:
    """Command-line entry: a configuration mistake exits with one line naming the fix."""
    try:
        return execute(cfg)
    except ConfigError as error:
        raise SystemExit(f"hotncold.train_prm: error: {error}") from None


def to_config(cfg: Any) -> TrainPRMConfig:
    if isinstance(cfg, TrainPRMConfig):
        return cfg
    if not OmegaConf.is_config(cfg):
        cfg = OmegaConf.create(cfg)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainPRMConfig), cfg))


def execute(cfg: Any) -> dict[str, Any]:
    cfg = to_config(cfg)
    validate(cfg)
    # weights that cannot be had fail in one line now, not after sampling or tokenizing
    check_model_path(cfg.train.base_model, "train.base_model")
    if cfg.train.data.source == "generate":
        check_model_path(cfg.model.path, "model.path", cfg.model.engine_kwargs.get("download_dir"))
    rundir = RunDir(cfg.out_dir)
    # one writer per run directory, as for experiment runs (hotncold.experiment.lock)
    with lock.locked(rundir.path, "PRM training", cfg.cluster.requeue_lock_wait_s) as held:
        return _execute(cfg, rundir, held)


def _execute(cfg: TrainPRMConfig, rundir: RunDir, held: lock.Lock) -> dict[str, Any]:
    rundir.prepare(cfg)
    info: dict[str, Any] = {
        "status": "running",
        "started_at": now(),
        **provenance(),
        "lock": held.describe(),
        "overrides": list(cfg.overrides),
        "timings": {},
    }
    write_json(rundir.info, info)
    with log_to(rundir.log):
        try:
            train_set, eval_set = _data(cfg, rundir.path, info["timings"])
            info["examples"] = {"train": len(train_set), "eval": len(eval_set)}
            started = time.perf_counter()
            result = train(train_set, cfg.train, rundir.path, cfg.seed)
            info["timings"]["train_s"] = round(time.perf_counter() - started, 3)
            history = result.pop("log_history")
            write_json(rundir.path / "train_history.json", history)
            info["training"] = result
            started = time.perf_counter()
            metrics = evaluate_model(rundir.path / "model", eval_set, cfg)
            info["timings"]["eval_s"] = round(time.perf_counter() - started, 3)
            write_json(rundir.path / "eval.json", metrics)
            info.update(status="finished", finished_at=now())
            write_json(rundir.info, info)
            log.info(
                "trained PRM in %s: ProcessBench F1 %.3f, step accuracy %s",
                rundir.path / "model",
                metrics["processbench"]["f1"],
                metrics["step_accuracy"],
            )
            return metrics
        except BaseException as error:
            # stopped from outside (Ctrl-C, SystemExit), as a search run says: `interrupted`
            stopped = isinstance(error, KeyboardInterrupt | SystemExit)
            info.update(
                status="interrupted" if stopped else "failed",
                error=f"{type(error).__name__}: {error}".splitlines()[0],
            )
            write_json(rundir.info, info)
            raise


def _data(
    cfg: TrainPRMConfig, run: Path, timings: dict[str, float]
) -> tuple[list[dict], list[dict]]:
    train_path, eval_path = run / "data" / "train.jsonl", run / "data" / "eval.jsonl"
    if train_path.exists() and eval_path.exists():
        log.info("reusing the examples in %s", train_path.parent)
        return read_jsonl(train_path), read_jsonl(eval_path)
    started = time.perf_counter()
    d = cfg.train.data
    if d.source == "generate":
        examples = data.generate_examples(
            d, cfg.model, cfg.prompt, vllm_engine.get_engine(cfg.model), cfg.seed
        )
    else:
        examples = data.load_examples(d)
    train_set, eval_set = data.split(examples, d, cfg.seed)
    timings["data_s"] = round(time.perf_counter() - started, 3)
    # eval first: the pair counts as written once train.jsonl (checked above) exists
    for path, rows in ((eval_path, eval_set), (train_path, train_set)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        tmp.unlink(missing_ok=True)
        append_jsonl(tmp, rows)
        tmp.replace(path)
    positives = sum(sum(e["labels"]) for e in train_set)
    steps = sum(len(e["labels"]) for e in train_set)
    log.info(
        "%d train / %d eval examples; %d of %d train steps labelled correct",
        len(train_set),
        len(eval_set),
        positives,
        steps,
    )
    return train_set, eval_set


def evaluate_model(folder: Path, examples: list[dict], cfg: TrainPRMConfig) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder, dtype=torch.float32)
    probs = step_probabilities(
        model,
        tokenizer,
        examples,
        cfg.train.step_separator,
        cfg.train.max_length,
        cfg.train.eval_batch_size,
    )
    return score(examples, probs)
