"""Stepwise-supervision examples: loaded in TRL's format, or sampled and auto-labelled here.

An example is `{"prompt": problem, "completions": [step, ...], "labels": [bool, ...]}`, the
format of TRL's stepwise-supervision datasets (trl-lib/math_shepherd, PRM800K conversions).

Auto-labelling (`source=generate`) closes the loop offline: the generator samples solutions to
arithmetic problems, and each step is labelled with the equation checker the way process labels
are defined in PRM800K/ProcessBench: a step is correct while no step up to it (itself included)
makes a false arithmetic claim, and the last step, which states the answer, is correct only if
the answer is. So labels are `[True, ..., True, False, ..., False]` with the first error where
the reasoning first goes wrong.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from hotncold.config import ConfigError, ModelConfig
from hotncold.data.arithmetic import generate
from hotncold.engine.prompts import build_prompt
from hotncold.engine.requests import GenerationRequest, derive_seed
from hotncold.evaluation.grading import grade
from hotncold.prm.base import split_steps
from hotncold.prm.equation_checker import find_claims
from hotncold.search.temperature import TemperaturePlan
from hotncold.train_prm.config import TrainDataConfig

log = logging.getLogger(__name__)


def label_steps(steps: list[str], final_answer_correct: bool) -> list[bool]:
    """Prefix-correctness labels from the equation checker and the final answer's grade."""
    labels, sound = [], True
    for step in steps:
        if any(not claim.holds for claim in find_claims(step)):
            sound = False
        labels.append(sound)
    if labels and not final_answer_correct:
        labels[-1] = False
    return labels


def generate_examples(
    cfg: TrainDataConfig, model: ModelConfig, engine: Any, seed: int
) -> list[dict[str, Any]]:
    """Sample `samples_per_problem` solutions per arithmetic problem in one engine call and
    label every step."""
    rows = generate(cfg.per_level, seed=cfg.generator_seed, levels=tuple(cfg.levels))
    k = len(cfg.temperatures)
    plan = TemperaturePlan(values=tuple(cfg.temperatures), ratios=tuple([1.0 / k] * k))
    # Remainder ties go to the first temperature for every problem (no rotation): this is the
    # mix of a PRM's training data, not a measurement of temperature, and rotating it would
    # change the data of every existing training config (its run name does not carry the
    # results version).
    counts = plan.counts(cfg.samples_per_problem)
    requests, owners = [], []
    for row in rows:
        prompt = build_prompt(engine, model, row["problem"])
        for value, count in zip(plan.values, counts):
            if count:
                requests.append(
                    GenerationRequest(
                        prompt=prompt,
                        temperature=value,
                        max_tokens=model.max_tokens,
                        n=count,
                        seed=derive_seed(seed, row["unique_id"], "train_prm", value),
                        top_p=model.top_p,
                    )
                )
                owners.append(row)
    log.info(
        "sampling %d solutions for %d arithmetic problems",
        len(rows) * cfg.samples_per_problem,
        len(rows),
    )
    examples = []
    for row, generations in zip(owners, engine.generate(requests)):
        for g in generations:
            steps = split_steps(g.text, model.step_delimiter)
            if not steps:
                continue
            examples.append(
                {
                    "prompt": row["problem"],
                    "completions": steps,
                    "labels": label_steps(steps, grade(g.text, row["answer"])),
                    "uid": row["unique_id"],
                    "level": row["level"],
                }
            )
    return examples


def load_examples(cfg: TrainDataConfig) -> list[dict[str, Any]]:
    """TRL-format rows from the hub or a local file, with the configured column names."""
    import datasets

    try:
        if cfg.source == "hub":
            ds = datasets.load_dataset(cfg.path, cfg.subset, split=cfg.split)
        else:
            kind = "parquet" if str(cfg.path).endswith(".parquet") else "json"
            ds = datasets.load_dataset(kind, data_files=str(cfg.path), split="train")
    except Exception as error:  # the hub and file readers raise many types; one line for the user
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"cannot load train.data.path={cfg.path!r}: {first}") from error
    for field in (cfg.prompt_field, cfg.completions_field, cfg.labels_field):
        if field not in ds.column_names:
            raise ConfigError(
                f"train data has no column {field!r} (columns: {', '.join(ds.column_names)}); "
                "set train.data.prompt_field / completions_field / labels_field"
            )
    examples = []
    for row in ds:
        steps, labels = list(row[cfg.completions_field]), [bool(x) for x in row[cfg.labels_field]]
        if len(steps) != len(labels):
            raise ConfigError("a train example has a different number of steps and labels")
        if steps:
            examples.append(
                {"prompt": row[cfg.prompt_field], "completions": steps, "labels": labels}
            )
    return examples


def split(
    examples: list[dict[str, Any]], cfg: TrainDataConfig, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shuffle, cut to `limit`, and hold out `eval_fraction` (at least one example each side).

    Generated examples are split by problem, so no problem is in both parts."""
    rng = random.Random(seed)
    examples = list(examples)
    rng.shuffle(examples)
    if cfg.limit is not None:
        examples = examples[: cfg.limit]
    if len(examples) < 2:
        raise ConfigError(f"only {len(examples)} training examples; sample or load more")
    if "uid" in examples[0]:
        uids = sorted({e["uid"] for e in examples})
        rng.shuffle(uids)
        held = set(uids[: max(1, round(len(uids) * cfg.eval_fraction))])
        train = [e for e in examples if e["uid"] not in held]
        evaluation = [e for e in examples if e["uid"] in held]
        if train and evaluation:
            return train, evaluation
    cut = min(len(examples) - 1, max(1, round(len(examples) * cfg.eval_fraction)))
    return examples[cut:], examples[:cut]
