"""Problems: loading rows from the generator, the hub or a file, and mapping their fields."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotncold.config import ConfigError, DatasetConfig
from hotncold.data import arithmetic, files


@dataclass(frozen=True)
class Problem:
    """One problem in the MATH-like schema every approach and metric works with."""

    uid: str
    problem: str
    answer: str
    level: int | None = None
    subject: str | None = None
    row: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_problems(cfg: DatasetConfig) -> list[Problem]:
    """Rows of the configured dataset, filtered, sliced and sharded; ConfigError when empty."""
    rows = _read_rows(cfg)
    problems = [_to_problem(cfg, i, row) for i, row in enumerate(rows)]
    if cfg.levels is not None:
        keep = set(cfg.levels)
        problems = [p for p in problems if p.level in keep]
    end = None if cfg.limit is None else cfg.start + cfg.limit
    problems = problems[cfg.start : end]
    problems = shard(problems, cfg.num_shards, cfg.shard)
    if not problems:
        raise ConfigError(
            f"dataset {cfg.name!r} selects no problems (levels={cfg.levels}, start={cfg.start}, "
            f"limit={cfg.limit}, shard {cfg.shard}/{cfg.num_shards}); widen the selection"
        )
    seen: set[str] = set()
    for p in problems:
        if p.uid in seen:
            raise ConfigError(
                f"dataset {cfg.name!r} repeats the id {p.uid!r}; set dataset.id_field to a "
                "unique column or to null (rows are then numbered)"
            )
        seen.add(p.uid)
    return problems


def shard(items: Sequence, num_shards: int, index: int) -> list:
    """Contiguous shard `index` of `num_shards`; sizes differ by at most one."""
    base, extra = divmod(len(items), num_shards)
    start = index * base + min(index, extra)
    return list(items[start : start + base + (1 if index < extra else 0)])


def _read_rows(cfg: DatasetConfig) -> list[dict[str, Any]]:
    if cfg.source == "arithmetic":
        return arithmetic.generate(cfg.per_level, seed=cfg.generator_seed)
    if cfg.source == "file":
        return _read_file(Path(cfg.path or ""))
    return _read_hub(cfg)


def _read_file(path: Path) -> list[dict[str, Any]]:
    return files.read_rows(path, "dataset.path")


def _read_hub(cfg: DatasetConfig) -> list[dict[str, Any]]:
    check_hub_id(str(cfg.path), "dataset.path")
    import datasets

    try:
        ds = datasets.load_dataset(cfg.path, cfg.subset, split=cfg.split)
    except Exception as error:  # the hub raises many types; the user needs one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if datasets.config.HF_HUB_OFFLINE:  # then only the local cache was looked in
            raise ConfigError(
                f"dataset.path={cfg.path!r} (split {cfg.split!r}) is not in the local datasets "
                f"cache, and the hub is off (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE): {first}; "
                "load it once where there is network, or download it and use "
                "dataset.source=file"
            ) from error
        raise ConfigError(
            f"cannot load dataset {cfg.path!r} (split {cfg.split!r}) from the hub: {first}; "
            "check the id and network, or download it and use dataset.source=file"
        ) from error
    return list(ds)


def check_hub_id(path: str, setting: str) -> None:
    """ConfigError unless `path` (the value of `setting`) is a hub dataset id by
    huggingface_hub's rules, or a local dataset folder that `datasets` reads."""
    if Path(path).expanduser().exists():
        return
    source = setting.rsplit(".", 1)[0] + ".source"  # dataset.source, train.data.source
    if path.startswith(("/", "./", "../", "~")):
        raise ConfigError(
            f"{setting}={path!r}: no such folder; give a hub dataset id (owner/name), or "
            f"{source}=file for a local file"
        )
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(path)
    except HFValidationError as error:
        reason = str(error).split(":", 1)[0].rstrip(".")
        raise ConfigError(
            f"{setting}={path!r} is not a valid hub dataset id ({reason}); give owner/name "
            f"(e.g. HuggingFaceH4/MATH-500), or {source}=file for a local file"
        ) from None


def _to_problem(cfg: DatasetConfig, index: int, row: dict[str, Any]) -> Problem:
    for key, column in (("problem_field", cfg.problem_field), ("answer_field", cfg.answer_field)):
        if column not in row:
            raise ConfigError(
                f"dataset {cfg.name!r} has no column {column!r} (columns: {', '.join(row)}); "
                f"set dataset.{key}"
            )
    answer = str(row[cfg.answer_field])
    if cfg.answer_pattern:
        match = re.search(cfg.answer_pattern, answer, flags=re.S | re.M)
        if match is None:
            raise ConfigError(
                f"dataset.answer_pattern {cfg.answer_pattern!r} does not match the answer of row "
                f"{index}; fix the pattern"
            )
        answer = match.group(1).strip()
    for key in ("level_field", "subject_field", "id_field"):
        column = getattr(cfg, key)
        if column is not None and column not in row:
            raise ConfigError(
                f"dataset {cfg.name!r} has no column {column!r}; set dataset.{key} to a column "
                "or to null"
            )
    uid = str(row[cfg.id_field]) if cfg.id_field else f"{cfg.name}/{index}"
    level = _level(row[cfg.level_field]) if cfg.level_field else None
    subject = str(row[cfg.subject_field]) if cfg.subject_field else None
    return Problem(
        uid=uid,
        problem=str(row[cfg.problem_field]),
        answer=answer,
        level=level,
        subject=subject,
        row=dict(row),
    )


def _level(value: Any) -> int | None:
    """MATH levels come as 3 or 'Level 3'; anything else is treated as unknown."""
    if value is None:
        return None
    match = re.search(r"\d+", str(value))
    return int(match.group()) if match else None
