"""A run directory as one flat table: one row per problem x completion, with the run's ids.

The run directory is already plain data (`datasets.load_dataset("json", data_files=...)` and
`pandas.read_json(..., lines=True)` read completions.jsonl as it is). For the hub, its nested
records are flattened (`flat_table`), so that `load_dataset(repo, run_name)` gives a table to
filter and group without unpacking lists; `features()` fixes its columns and types for every run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hotncold.experiment.naming import approach_label, describe_temperature
from hotncold.experiment.rundir import RunDir, read_json, read_jsonl

if TYPE_CHECKING:
    import datasets


def features() -> datasets.Features:
    """The flat table's schema, fixed so every run's config has the same columns and types."""
    from datasets import Features, List, Value

    text, integer, real = Value("string"), Value("int64"), Value("float64")
    return Features(
        {
            "run_name": text,
            "approach": text,
            "temperature_tag": text,
            "n": integer,
            "seed": integer,
            "model": text,
            "prm": text,
            "agg_strategy": text,
            "dataset": text,
            "uid": text,
            "problem": text,
            "gold_answer": text,
            "level": integer,
            "subject": text,
            "prompt": text,
            "completion_index": integer,
            "text": text,
            "steps": List(text),
            "step_scores": List(real),
            "step_temperatures": List(real),
            "temperature": real,
            "num_tokens": integer,
            "finish_reason": text,
            "finished": Value("bool"),
            "group": integer,
            "extracted_answer": text,
            "cluster": integer,
            "correct": Value("bool"),
            "score": real,
            "extra": text,
        }
    )


def run_name_of(rundir: RunDir) -> str:
    """The resolved run name run.json records (the folder's name for runs made without it)."""
    return rundir.read_info().get("run_name") or rundir.path.name


def flat_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """One row per problem x completion of a run directory, with the run's identifiers."""
    rundir = RunDir(run_dir)
    cfg = yaml.safe_load(rundir.config.read_text()) or {}
    metrics = read_json(rundir.metrics) if rundir.metrics.is_file() else {}
    run = {
        "run_name": run_name_of(rundir),
        "approach": approach_label(cfg),
        "temperature_tag": describe_temperature(cfg["temperature"]).tag,
        "n": int(cfg["n"]),
        "seed": int(cfg["seed"]),
        "model": str(cfg["model"]["name"]),
        "prm": str(cfg["prm"]["name"]),
        "agg_strategy": metrics.get("agg_strategy") or cfg["prm"]["agg_strategy"],
        "dataset": str(cfg["dataset"]["name"]),
    }
    rows = []
    for record in read_jsonl(rundir.completions):  # read only: never repair here
        problem = record.get("problem") or {}
        for index, c in enumerate(record["completions"]):
            rows.append(
                {
                    **run,
                    "uid": record["uid"],
                    "problem": problem.get("problem"),
                    "gold_answer": problem.get("answer"),
                    "level": problem.get("level"),
                    "subject": problem.get("subject"),
                    "prompt": record.get("prompt"),
                    "completion_index": index,
                    "text": c["text"],
                    "steps": c["steps"],
                    "step_scores": c["step_scores"],
                    "step_temperatures": c["step_temperatures"],
                    "temperature": c.get("temperature"),
                    "num_tokens": c["num_tokens"],
                    "finish_reason": c["finish_reason"],
                    "finished": c.get("finished"),
                    "group": c.get("group"),
                    "extracted_answer": c.get("answer"),
                    "cluster": c.get("cluster"),
                    "correct": c["correct"],
                    "score": c["score"],
                    # search details differ by approach; JSON keeps one column type for all
                    "extra": json.dumps(c.get("extra") or {}, sort_keys=True),
                }
            )
    return rows


def flat_table(run_dir: str | Path) -> datasets.Dataset:
    """`flat_rows` as a `datasets.Dataset` with the fixed `features()` schema."""
    from datasets import Dataset

    return Dataset.from_list(flat_rows(run_dir), features=features())
