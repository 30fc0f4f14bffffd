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
    """Rows of a hub dataset, read from its snapshot in the Hugging Face cache (downloaded
    first when online). One way for online and offline runs alike: a compute node without
    network reads exactly what `python -m hotncold.prefetch` put in the cache on the login
    node (`datasets` itself, offline, finds only datasets it prepared before)."""
    check_hub_id(str(cfg.path), "dataset.path")
    import datasets
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    local = Path(str(cfg.path)).expanduser()
    try:  # a dataset folder on disk is read as it is
        folder = str(local) if local.exists() else snapshot_download(cfg.path, repo_type="dataset")
    except LocalEntryNotFoundError:  # offline, and not in the cache
        raise ConfigError(
            f"dataset {cfg.path!r} is not in the Hugging Face cache and the hub is offline "
            f"(HF_HUB_OFFLINE=1); on a node with internet run `python -m hotncold.prefetch "
            f"dataset={cfg.name}` (or the run's own overrides), or use dataset.source=file"
        ) from None
    except Exception as error:  # the hub raises many types; the user needs one line
        raise ConfigError(
            f"cannot download dataset {cfg.path!r} from the hub: {_first_line(error)}; check "
            "the id and network, or download it and use dataset.source=file"
        ) from error
    try:
        ds = datasets.load_dataset(folder, cfg.subset, split=cfg.split)
    except Exception as error:
        raise ConfigError(
            f"cannot read dataset {cfg.path!r} (subset {cfg.subset!r}, split {cfg.split!r}) "
            f"from its files: {_first_line(error)}; check dataset.subset and dataset.split"
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _to_problem(cfg: DatasetConfig, index: int, row: dict[str, Any]) -> Problem:
    for key, column in (("problem_field", cfg.problem_field), ("answer_field", cfg.answer_field)):
        if column not in row:
            raise ConfigError(
                f"dataset {cfg.name!r} has no column {column!r} (columns: {', '.join(row)}); "
                f"set dataset.{key}"
            )
    answer = _answer_text(row[cfg.answer_field])
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


def _answer_text(value: Any) -> str:
    """The gold answer as text. A numeric column stores integers as floats (AMC's 142.0):
    those are written as integers, the way the problems state them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _level(value: Any) -> int | None:
    """MATH levels come as 3 or 'Level 3'; anything else is treated as unknown."""
    if value is None:
        return None
    match = re.search(r"\d+", str(value))
    return int(match.group()) if match else None
