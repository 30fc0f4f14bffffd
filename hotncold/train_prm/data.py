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
from pathlib import Path
from typing import Any

from hotncold.config import ConfigError, ModelConfig, PromptConfig
from hotncold.data import check_hub_id
from hotncold.data.arithmetic import generate
from hotncold.data.files import read_rows
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
    cfg: TrainDataConfig, model: ModelConfig, prompt: PromptConfig, engine: Any, seed: int
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
        text = build_prompt(engine, prompt, model, row["problem"])
        for value, count in zip(plan.values, counts):
            if count:
                requests.append(
                    GenerationRequest(
                        prompt=text,
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
    if cfg.source == "file":  # a torn or malformed line is named in one line
        rows: Any = read_rows(Path(str(cfg.path)).expanduser(), "train.data.path")
        if not rows:
            raise ConfigError(f"train.data.path={cfg.path!r} holds no rows; give TRL-format rows")
        columns = list(rows[0])
    else:
        check_hub_id(str(cfg.path), "train.data.path")
        import datasets

        try:
            rows = datasets.load_dataset(cfg.path, cfg.subset, split=cfg.split)
        except Exception as error:  # the hub raises many types; one line for the user
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            offline = " (the hub is off: only the local cache was read)" * bool(
                datasets.config.HF_HUB_OFFLINE
            )
            raise ConfigError(
                f"cannot load train.data.path={cfg.path!r}{offline}: {first}"
            ) from error
        columns = rows.column_names
    for field in (cfg.prompt_field, cfg.completions_field, cfg.labels_field):
        if field not in columns:
            raise ConfigError(
                f"train data has no column {field!r} (columns: {', '.join(columns)}); "
                "set train.data.prompt_field / completions_field / labels_field"
            )
    examples = []
    for row in rows:
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
