"""Joining the shards of a sweep's configurations (`dataset.num_shards=k`) into whole runs.

A group is every shard of one configuration; `check` finds what is missing (shards that never
ran or did not finish, problems absent or seen twice) and `write_merged` writes the merged run
folder, named as the unsharded run would be: completions.jsonl in dataset order, metrics.json
recomputed over all problems, config.yaml without the shard axis, and run.json naming the
shards it came from. The command line is `python -m hotncold.merge` (`hotncold/merge.py`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotncold.config import Config, ConfigError
from hotncold.data import load_problems, shard
from hotncold.evaluation.metrics import run_metrics
from hotncold.experiment import lock
from hotncold.experiment.naming import RESULTS_VERSION, run_name
from hotncold.experiment.run import to_config
from hotncold.experiment.rundir import RunDir, now, read_json, read_jsonl, write_atomic, write_json
from hotncold.experiment.shares import temperature_shares

log = logging.getLogger(__name__)


@dataclass
class Shard:
    index: int
    run_dir: Path
    info: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def status(self) -> str:
        return self.info.get("status", "no run.json")

    @property
    def total(self) -> int | None:
        return (self.info.get("problems") or {}).get("total")


@dataclass
class Group:
    """The shards of one configuration."""

    name: str
    """The merged run's name: the unsharded run's name."""
    config: Config
    """The configuration without its shard axis (num_shards=1)."""
    num_shards: int
    shards: dict[int, list[Shard]] = field(default_factory=lambda: defaultdict(list))
    gaps: list[str] = field(default_factory=list)
    """What is missing or unfinished, one line per shard."""
    missing_uids: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.gaps


def merge_sweep(
    sweep_dir: Path, out: Path | None = None, allow_incomplete: bool = False
) -> list[Group]:
    """Merge the shards of every configuration under `sweep_dir` into `out` (default
    `<sweep_dir>/merged/<name>`); returns every group, with what is missing in `gaps`.
    Raises ConfigError for what cannot be merged at all (duplicated problems)."""
    sweep_dir = Path(sweep_dir)
    out = Path(out) if out is not None else sweep_dir / "merged"
    groups = find_groups(sweep_dir, exclude=out)
    if not groups:
        raise ConfigError(
            f"{sweep_dir} holds no sharded runs (config.yaml with dataset.num_shards > 1); "
            "sweep dataset.shard=0,1,... with dataset.num_shards=k first"
        )
    for group in groups:
        check(group)
        if group.complete or allow_incomplete:
            write_merged(group, out / group.name)
    return groups


def find_groups(sweep_dir: Path, exclude: Path | None = None) -> list[Group]:
    """Sharded runs below `sweep_dir`, grouped by their configuration minus the shard."""
    groups: dict[tuple[str, int], Group] = {}
    for path in sorted(sweep_dir.glob("*/config.yaml")):
        run = path.parent
        if exclude is not None and run.resolve().is_relative_to(Path(exclude).resolve()):
            continue
        try:
            cfg = to_config(yaml.safe_load(path.read_text()))
        except Exception as error:  # OmegaConf raises several types; one line names the file
            raise ConfigError(f"cannot read {path}: {str(error).splitlines()[0]}") from error
        k = cfg.dataset.num_shards
        if k <= 1:
            continue
        whole = copy.deepcopy(cfg)
        whole.dataset.num_shards, whole.dataset.shard = 1, 0
        name = run_name(dataclasses.asdict(whole))
        group = groups.setdefault((name, k), Group(name, whole, k))
        info = read_json(run / "run.json") if (run / "run.json").is_file() else {}
        # No repair: merging only reads (a cut last line is left for the run's own resume).
        try:
            records = read_jsonl(run / "completions.jsonl")
        except ValueError as error:  # damaged before its last line
            raise ConfigError(str(error)) from error
        group.shards[cfg.dataset.shard].append(Shard(cfg.dataset.shard, run, info, records))
    by_name: dict[str, list[int]] = defaultdict(list)
    for name, k in groups:
        by_name[name].append(k)
    for name, ks in by_name.items():
        if len(ks) > 1:
            raise ConfigError(
                f"{name} is sharded {' and '.join(map(str, sorted(ks)))} ways in {sweep_dir}; "
                "merge one sharding (move the other's run folders away)"
            )
    return list(groups.values())


def check(group: Group) -> None:
    """Fill `group.gaps`, `missing_uids` and `records` (in dataset order)."""
    try:
        expected = [p.uid for p in load_problems(group.config.dataset)]
    except ConfigError as error:  # e.g. a hub dataset out of reach: check counts instead
        log.warning("%s: cannot load its problems (%s); checking counts only", group.name, error)
        expected = None
    seen: dict[str, Path] = {}
    records: dict[str, dict[str, Any]] = {}
    for index in range(group.num_shards):
        runs = group.shards.get(index, [])
        sharded = copy.deepcopy(group.config)
        sharded.dataset.num_shards, sharded.dataset.shard = group.num_shards, index
        if not runs:
            group.gaps.append(
                f"shard {index}: no run folder ({run_name(dataclasses.asdict(sharded))})"
            )
            if expected is not None:
                group.missing_uids += [uid for uid in shard(expected, group.num_shards, index)]
            continue
        if len(runs) > 1:
            raise ConfigError(
                f"{group.name}: shard {index} ran in {len(runs)} folders "
                f"({', '.join(str(r.run_dir) for r in runs)}); keep one"
            )
        run = runs[0]
        for record in run.records:
            uid = record["uid"]
            if uid in seen:
                raise ConfigError(
                    f"{group.name}: problem {uid!r} appears twice ({seen[uid]} and "
                    f"{run.run_dir}); delete the wrong run folder and run it again"
                )
            seen[uid] = run.run_dir
            records[uid] = record
        wanted = shard(expected, group.num_shards, index) if expected is not None else None
        total = len(wanted) if wanted is not None else run.total
        have = len(run.records)
        if wanted is not None:
            share = set(wanted)
            extra = [r["uid"] for r in run.records if r["uid"] not in share]
            if extra:
                raise ConfigError(
                    f"{group.name}: shard {index} ({run.run_dir}) holds {len(extra)} problems "
                    f"outside its share of the dataset (e.g. {extra[0]!r}); did the dataset "
                    "change since it ran?"
                )
            group.missing_uids += [uid for uid in wanted if uid not in records]
        if run.status != "finished" or total is None or have < total:
            group.gaps.append(
                f"shard {index}: {have} of {total if total is not None else '?'} problems "
                f"({run.status}) in {run.run_dir}"
            )
    order = expected if expected is not None else list(records)
    group.records = [records[uid] for uid in order if uid in records]


def write_merged(group: Group, out: Path) -> None:
    """Write the merged run folder (completions, metrics, config, run.json) atomically, holding
    its lock: a second merge into the same folder is refused (`hotncold.experiment.lock`)."""
    with lock.locked(out, "merge"):
        _write_merged(group, out)


def _write_merged(group: Group, out: Path) -> None:
    cfg = copy.deepcopy(group.config)
    cfg.out_dir, cfg.run_name = str(out), group.name
    cfg.overrides = [o for o in cfg.overrides if not o.startswith("dataset.shard=")]
    rundir = RunDir(out)
    rundir.prepare(cfg)  # refuses a folder holding another config
    text = "".join(json.dumps(r) + "\n" for r in group.records)
    write_atomic(rundir.completions, text)
    if group.records:
        metrics = run_metrics(group.records, cfg)
        write_json(rundir.metrics, metrics)
    shards = [runs[0] for _, runs in sorted(group.shards.items()) if runs]
    totals: dict[str, float] = defaultdict(float)
    for s in shards:
        for key, value in (s.info.get("totals") or {}).items():
            totals[key] += value or 0
    write_json(
        rundir.info,
        {
            "status": "finished" if group.complete else "incomplete",
            "run_name": group.name,
            "out_dir": str(out),
            "merged_at": now(),
            "problems": {
                "total": len(group.records) + len(group.missing_uids),
                "done": len(group.records),
            },
            "missing": {"shards": group.gaps, "uids": group.missing_uids},
            "merged_from": [
                {
                    "shard": s.index,
                    "run_dir": str(s.run_dir),
                    "status": s.status,
                    "problems": len(s.records),
                    "sessions": len(s.info.get("sessions", [])),
                }
                for s in shards
            ],
            "totals": {k: round(v, 3) for k, v in totals.items()},
            # the shards' own (one run name, so one version); a fresh merge of nothing: ours
            "results_version": (
                shards[0].info.get("results_version", 1) if shards else RESULTS_VERSION
            ),
            "temperature_shares": temperature_shares(group.records, cfg.temperature),
        },
    )
