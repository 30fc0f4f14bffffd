"""Reading run directories into tidy tables.

Only the files a run leaves behind are read (config.yaml, completions.jsonl, metrics.json,
run.json), never the engine, so a report can be made anywhere the folders are copied to.

Three tables come out:
- `runs`: one row per run directory;
- `problems`: one row per run x problem, with what explains accuracy (distinct answers, PRM
  score spread, tokens);
- `results`: one row per run x problem x N x selection method, the accuracy on that problem
  (an expectation over random subsets of size N, as `hotncold.evaluation.metrics` defines it)
  and the compute spent at N.

Runs are grouped into *settings* (everything that determines results except the seed and the
temperature schedule) and *configurations* (a setting plus a temperature schedule); the seeds
of a configuration are its replicates. Shards of one run (`dataset.shard`) fall into the same
configuration, so a sharded sweep reads as one experiment.

A mix is labelled by its ratios (`T0.4-0.8-1.2`) unless what its runs sampled, pooled over the
configuration's runs (`extra.sampled_temperatures`), differs from them beyond what exact
allocation explains (`hotncold.experiment.shares.differs`): then its label carries the realised
shares (`T0.4-0.8-1.2_real0.5-0.25-0.25`), so it is never read as the mix it was not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from tqdm import tqdm

from hotncold.config import MetricsConfig
from hotncold.evaluation.metrics import METHODS, budgets, metrics_from_records, soft_key
from hotncold.experiment.naming import (
    NON_RESULT_KEYS,
    OPTIONAL_KEYS,
    approach_label,
    config_hash,
    describe_temperature,
    prm_roles,
)
from hotncold.experiment.rundir import read_json, read_jsonl
from hotncold.experiment.shares import differs, pooled, realised_tag, temperature_shares
from hotncold.prm.base import aggregate

log = logging.getLogger(__name__)

# Columns naming what a row was measured under (shared by every table).
KEY_COLUMNS = [
    "run",
    "family",
    "setting",
    "config",
    "approach",
    "temperature",
    "temp_kind",
    "temp_value",
    "n",
    "seed",
    "model",
    "prm",
    "agg",
    "dataset",
    "guided_by",
    "scored_by",
    "source_prm",
    "samples",
]


class AnalysisError(ValueError):
    """Bad input to the analyzer; the message is one line that names the fix."""


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Collection:
    runs: pd.DataFrame
    problems: pd.DataFrame
    results: pd.DataFrame
    settings: dict[str, str]
    """Setting id -> readable label."""
    families: dict[str, str]
    """Family id (a setting without approach and n) -> readable label."""
    skipped: list[Skipped] = field(default_factory=list)
    selection: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Soft Best-of-N: one row per run x problem x selection temperature `tau` x N, with the
    key columns and `accuracy` (the exact expectation over the pick)."""


def find_run_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories (folders holding run.json) at or anywhere below `paths`, each once."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise AnalysisError(f"{path} does not exist; give run directories or sweep folders")
        if (path / "run.json").is_file():
            found[path.resolve()] = None
            continue
        for info in sorted(path.rglob("run.json")):
            found[info.parent.resolve()] = None
    return list(found)


def setting_of(cfg: dict[str, Any], agg: str, family: bool = False) -> str:
    """A stable id of everything that determines results except seed and temperature; a
    `family` id also leaves out the approach and the budget (what compute comparisons vary)."""
    key = {k: v for k, v in cfg.items() if k not in NON_RESULT_KEYS and k != "hydra"}
    for name in ("seed", "temperature", *(("approach", "n") if family else ())):
        key.pop(name, None)
    for name in OPTIONAL_KEYS:  # null (an ordinary run): as if absent, as in run names
        if key.get(name) is None:
            key.pop(name, None)
    dataset = dict(key.get("dataset") or {})
    dataset.pop("shard", None)  # shards of one run are one experiment
    dataset.pop("num_shards", None)
    key["dataset"] = dataset
    prm = dict(key.get("prm") or {})
    prm["agg_strategy"] = agg
    key["prm"] = prm
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


@dataclass
class _Run:
    path: Path
    cfg: dict[str, Any]
    info: dict[str, Any]
    records: list[dict[str, Any]]
    metrics: dict[str, Any]
    num_problems: int = 0
    """Problems in the run (run.json totals cover them all, even those left out as repeats)."""
    num_completions: int = 0

    def __post_init__(self) -> None:
        self.num_problems = len(self.records)
        self.num_completions = sum(len(r["completions"]) for r in self.records)


def _read(path: Path) -> _Run | Skipped:
    try:
        info = read_json(path / "run.json")
    except (OSError, json.JSONDecodeError) as error:
        return Skipped(str(path), f"run.json unreadable ({error})")
    status = info.get("status")
    if status != "finished":
        done = info.get("problems", {})
        return Skipped(
            str(path),
            f"status {status!r} ({done.get('done', '?')}/{done.get('total', '?')} problems done)",
        )
    if not (path / "config.yaml").is_file() or not (path / "completions.jsonl").is_file():
        return Skipped(str(path), "config.yaml or completions.jsonl is missing")
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text()) or {}
        records = read_jsonl(path / "completions.jsonl")  # read only: never repair here
        metrics = read_json(path / "metrics.json") if (path / "metrics.json").is_file() else {}
    except (OSError, ValueError, yaml.YAMLError) as error:
        return Skipped(str(path), f"unreadable files ({str(error).splitlines()[0]})")
    if not records:
        return Skipped(str(path), "finished with no problems")
    return _Run(path, cfg, info, records, metrics)


def collect(paths: Sequence[str | Path], agg: str | None = None) -> Collection:
    """Read every finished run under `paths` into the tidy tables.

    `agg` re-aggregates step scores with another strategy (last/min/prod/mean) and recomputes
    the per-problem curves from completions.jsonl; by default each run's metrics.json is used.
    """
    dirs = find_run_dirs(paths)
    skipped: list[Skipped] = []
    runs, problems, results, selection = [], [], [], []
    labels: dict[str, str] = {}
    family_labels: dict[str, str] = {}
    seen: dict[tuple[str, str, int, str], str] = {}
    sampled: dict[str, list[dict[str, Any]]] = {}  # mix configuration -> its runs' shares
    for path in tqdm(dirs, desc="reading runs", unit="run", disable=len(dirs) < 20):
        run = _read(path)
        if isinstance(run, Skipped):
            log.warning("skipping %s: %s", run.path, run.reason)
            skipped.append(run)
            continue
        try:
            keys = _keys(run, agg)
        except (KeyError, TypeError, ValueError) as error:
            reason = f"config.yaml lacks what analysis needs ({error!r})"
            log.warning("skipping %s: %s", path, reason)
            skipped.append(Skipped(str(path), reason))
            continue
        fresh = []
        for record in run.records:
            where = (keys["setting"], keys["temperature"], keys["seed"], record["uid"])
            if where in seen:
                log.warning(
                    "%s repeats problem %s of %s (seed %s); keeping the one in %s",
                    path,
                    record["uid"],
                    keys["config"],
                    keys["seed"],
                    seen[where],
                )
                continue
            seen[where] = str(path)
            fresh.append(record)
        if not fresh:
            skipped.append(Skipped(str(path), "every problem repeats another run's"))
            continue
        run.records = fresh
        # adaptive_bon's values are a ladder it chooses from, not shares it promised
        if keys["temp_kind"] == "mix" and not keys["approach"].startswith("adaptive_bon"):
            shares = temperature_shares(fresh, run.cfg["temperature"])
            sampled.setdefault(keys["config"], []).append(shares)
        labels[keys["setting"]] = _setting_label(keys, run.cfg)
        family_labels[keys["family"]] = (
            f"{keys['model']} · {_prm_label(run.cfg, keys)} · " + (keys["dataset"])
        )
        runs.append(_run_row(run, keys))
        p_rows, r_rows = _rows(run, keys, agg)
        problems += p_rows
        results.append(r_rows)
        selection.append(_soft_rows(run, keys, agg))
    if not runs:
        where = ", ".join(str(p) for p in paths)
        raise AnalysisError(
            f"no finished runs under {where} ({len(skipped)} skipped); point at run directories "
            "(folders with run.json) or sweep folders holding them"
        )
    frames = [pd.DataFrame(runs), _tidy(pd.DataFrame(problems))]
    frames.append(_tidy(pd.concat(results, ignore_index=True)))
    frames.append(_tidy(pd.concat(selection, ignore_index=True)))
    _label_realised(frames, sampled)
    runs_df, problems_df, results_df, selection_df = frames
    return Collection(
        runs=runs_df,
        problems=problems_df,
        results=results_df,
        settings=_unique_labels(labels),
        families=_unique_labels(family_labels),
        skipped=skipped,
        selection=selection_df,
    )


def _label_realised(frames: list[pd.DataFrame], sampled: dict[str, list[dict[str, Any]]]) -> None:
    """Relabel, in place, the mixes whose runs did not sample their nominal shares."""
    relabel = {}
    for config, shares in sampled.items():
        together = pooled(shares)
        if differs(together):
            setting, tag = config.split(":", 1)
            relabel[config] = (
                f"{setting}:{tag}{realised_tag(together)}",
                tag + realised_tag(together),
            )
            log.warning(
                "%s sampled %s, not its nominal shares %s: labelled %s",
                tag,
                together["sampled"]["shares"],
                together["nominal"],
                relabel[config][1],
            )
    for frame in frames:
        if not relabel or "config" not in frame:
            continue
        hit = frame["config"].isin(list(relabel))
        frame.loc[hit, "temperature"] = frame.loc[hit, "config"].map(lambda c: relabel[c][1])
        frame.loc[hit, "config"] = frame.loc[hit, "config"].map(lambda c: relabel[c][0])


def _keys(run: _Run, agg: str | None) -> dict[str, Any]:
    cfg = run.cfg
    used_agg = agg or run.metrics.get("agg_strategy") or cfg["prm"]["agg_strategy"]
    temperature = describe_temperature(cfg["temperature"])
    setting = setting_of(cfg, used_agg)
    guided_by, scored_by = prm_roles(cfg)
    return {
        "run": run.path.name,
        "family": setting_of(cfg, used_agg, family=True),
        "setting": setting,
        "config": f"{setting}:{temperature.tag}",
        "approach": approach_label(cfg),
        "temperature": temperature.tag,
        "temp_kind": temperature.kind,
        "temp_value": temperature.value,
        "n": int(cfg["n"]),
        "seed": int(cfg["seed"]),
        "model": str(cfg["model"]["name"]),
        "prm": str(cfg["prm"]["name"]),
        "agg": used_agg,
        "dataset": str(cfg["dataset"]["name"]),
        "guided_by": guided_by,
        "scored_by": scored_by,
        # which generation the completions come from: runs sharing it hold the same samples
        "samples": (run.info.get("rescored_from") or {}).get("samples") or config_hash(cfg),
        "source_prm": (cfg.get("source_prm") or {}).get("name"),
    }


def _prm_label(cfg: dict[str, Any], keys: dict[str, Any]) -> str:
    """`rlhflow_8b (last)`; a re-scored run: `skywork_1.5b (last), re-scoring rlhflow_8b's
    samples` (under beam search and DVTS those samples were guided by it)."""
    label = f"{keys['prm']} ({keys['agg']})"
    source = (cfg.get("source_prm") or {}).get("name")
    if source:
        label += f", re-scoring {source}'s samples"
    return label


def _setting_label(keys: dict[str, Any], cfg: dict[str, Any] | None = None) -> str:
    return (
        f"{keys['approach']} n={keys['n']} · {keys['model']} · "
        f"{_prm_label(cfg or {}, keys)} · {keys['dataset']}"
    )


def _unique_labels(labels: dict[str, str]) -> dict[str, str]:
    """Labels, with the setting id added where two different settings would read the same."""
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {
        s: (label if counts[label] == 1 else f"{label} [{s}]")
        for s, label in sorted(labels.items(), key=lambda kv: kv[1])
    }


def _run_row(run: _Run, keys: dict[str, Any]) -> dict[str, Any]:
    totals = run.info.get("totals", {})
    return {
        **keys,
        "path": str(run.path),
        "problems": len(run.records),
        "generated_tokens": totals.get("generated_tokens", math.nan),
        "prompt_tokens": totals.get("prompt_tokens", math.nan),
        "prm_tokens": totals.get("prm_tokens", math.nan),
        "prm_steps_scored": totals.get("prm_steps_scored", math.nan),
        "generator_flops": totals.get("generator_flops", math.nan),
        "prm_flops": totals.get("prm_flops", math.nan),
        "flops": totals.get("flops", math.nan),
        "wall_s": totals.get("wall_s", math.nan),
        "finished_at": run.info.get("finished_at"),
    }


def _curves(run: _Run, agg: str | None, n: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per-problem accuracy curves: metrics.json's, or recomputed under another agg."""
    stored = run.metrics.get("per_problem") or {}
    recompute = (agg is not None and agg != run.metrics.get("agg_strategy")) or any(
        r["uid"] not in stored for r in run.records
    )
    if not recompute:
        return stored
    m = run.cfg.get("metrics") or {}
    return metrics_from_records(
        run.records,
        n,
        int(m.get("num_subsets", 256)),
        int(m.get("seed", 0)),
        agg,
        finished_only=finished_only(run.cfg),
    )["per_problem"]


def selection_temperatures(cfg: dict[str, Any]) -> list[float]:
    """The run's soft Best-of-N grid (`metrics.selection_temperatures`; the default when its
    config predates it)."""
    grid = (cfg.get("metrics") or {}).get("selection_temperatures")
    if grid is None:
        grid = MetricsConfig().selection_temperatures
    return [float(t) for t in grid]


def _soft_rows(run: _Run, keys: dict[str, Any], agg: str | None) -> pd.DataFrame:
    """Soft Best-of-N's per-problem accuracy at each tau and N: metrics.json's, or recomputed
    from the stored scores (another `agg`, or a run whose metrics.json predates it)."""
    taus = selection_temperatures(run.cfg)
    n = keys["n"]
    stored = run.metrics.get("soft_best_of_n") or {}
    per_problem = stored.get("per_problem") or {}
    fresh = (
        (agg is None or agg == run.metrics.get("agg_strategy"))
        and [float(t) for t in stored.get("selection_temperatures") or []] == taus
        and all(r["uid"] in per_problem for r in run.records)
    )
    if not fresh and taus:
        m = run.cfg.get("metrics") or {}
        per_problem = metrics_from_records(
            run.records,
            n,
            int(m.get("num_subsets", 256)),
            int(m.get("seed", 0)),
            agg,
            finished_only=finished_only(run.cfg),
            selection_temperatures=taus,
        )["soft_best_of_n"]["per_problem"]
    columns: dict[str, list[Any]] = {c: [] for c in ("uid", "level", "subject", "tau", "N")}
    columns["accuracy"] = []
    for record in run.records:
        problem = record.get("problem") or {}
        for tau in taus:
            for k in budgets(n):
                columns["uid"].append(record["uid"])
                columns["level"].append(problem.get("level"))
                columns["subject"].append(problem.get("subject"))
                columns["tau"].append(tau)
                columns["N"].append(k)
                columns["accuracy"].append(float(per_problem[record["uid"]][soft_key(tau)][str(k)]))
    frame = pd.DataFrame(columns)
    for key, value in reversed(keys.items()):
        frame.insert(0, key, value)
    return frame


def finished_only(cfg: dict[str, Any]) -> bool:
    """The run's `approach.finished_only` (true, the default, when its config predates it)."""
    return bool((cfg.get("approach") or {}).get("finished_only", True))


def _rows(
    run: _Run, keys: dict[str, Any], agg: str | None
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    n = keys["n"]
    ns = budgets(n)
    curves = _curves(run, agg, n)
    totals = run.info.get("totals", {})
    compute = _Compute(
        ns=tuple(ns),
        totals=totals,
        num_problems=run.num_problems,
        prm_tokens_per_completion=float(totals.get("prm_tokens", 0) or 0)
        / max(1, run.num_completions),
        greedy=keys["temp_kind"] == "single" and keys["temp_value"] == 0,
        independent=keys["approach"] == "best_of_n",
    )
    problem_rows = []
    columns: dict[str, list[Any]] = {
        c: [] for c in ("uid", "level", "subject", "N", "method", "accuracy")
    }
    spent: dict[str, list[float]] = {name: [] for name, _ in SPENT}
    for record in run.records:
        cs = record["completions"]
        problem = record.get("problem") or {}
        scores = [aggregate(c["step_scores"], agg) if agg is not None else c["score"] for c in cs]
        # under finished_only an unfinished completion has no answer (as in the metrics)
        counts = [bool(c.get("finished")) or not finished_only(run.cfg) for c in cs]
        clusters = [c.get("cluster", -1) if ok else -1 for c, ok in zip(cs, counts)]
        tokens = np.array([c.get("num_tokens", 0) for c in cs], dtype=float)
        steps = np.array([len(c.get("step_scores") or []) for c in cs], dtype=float)
        row = {
            **keys,
            "uid": record["uid"],
            "level": problem.get("level"),
            "subject": problem.get("subject"),
            "completions": len(cs),
            "distinct_answers": len({k for k in clusters if k is not None and k >= 0}),
            "answered": float(np.mean([k is not None and k >= 0 for k in clusters])),
            "correct_share": float(
                np.mean([bool(c["correct"]) and ok for c, ok in zip(cs, counts)])
            ),
            "score_std": float(np.std(scores)),
            "mean_tokens": float(tokens.mean()),
            "mean_steps": float(steps.mean()),
            "finished_share": float(np.mean([bool(c.get("finished")) for c in cs])),
            **_adaptive_decision(cs),
        }
        at = compute.at(record, tokens, steps)
        row.update({name: at[name][-1] for name, _ in SPENT})
        problem_rows.append(row)
        curve = curves[record["uid"]]
        for method in METHODS:
            for i, k in enumerate(ns):
                columns["uid"].append(record["uid"])
                columns["level"].append(problem.get("level"))
                columns["subject"].append(problem.get("subject"))
                columns["N"].append(k)
                columns["method"].append(method)
                columns["accuracy"].append(float(curve[method][str(k)]))
                for name, values in spent.items():
                    values.append(at[name][i])
    frame = pd.DataFrame({**columns, **spent})
    for key, value in reversed(keys.items()):
        frame.insert(0, key, value)
    return problem_rows, frame


def _adaptive_decision(cs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """adaptive_bon's decision on a problem (`extra.adaptive` of its completions): the
    temperature its probe chose for the rest and the probe's disagreement; NaN for the rest."""
    decision = ((cs[0].get("extra") or {}).get("adaptive") or {}) if cs else {}
    return {
        "adaptive_temperature": float(decision.get("chosen_temperature", math.nan)),
        "adaptive_disagreement": float(decision.get("disagreement", math.nan)),
    }


SPENT = (
    ("gen_tokens", "generated_tokens"),
    ("prm_tokens", "prm_tokens"),
    ("prm_steps", "prm_steps_scored"),
    ("gen_flops", "generator_flops"),
    ("prm_flops", "prm_flops"),
    ("flops", "flops"),
)
"""Compute columns of the results and problems tables, and the key each reads from a record's
`compute` (or, for runs that predate it, from run.json's totals)."""


@dataclass(frozen=True)
class _Compute:
    """Compute spent on one problem at each budget N.

    Best-of-N samples are independent, so N of them cost N times the mean of this problem's
    completions (greedy generates one and repeats it, so it costs one at any N); FLOPs likewise,
    N/n of the problem's recorded FLOPs (the prompt's prefill, paid about once per problem, is
    spread with the rest). PRM tokens are not recorded per completion: each completion is
    charged the run's mean. A step-level search at budget n is not n/N searches at budget N, so
    its cost is known only at N = n: the record's own `compute`, else (runs that predate it) the
    run's totals spread evenly over problems. FLOPs a run could not count (null) stay NaN.
    """

    ns: tuple[int, ...]
    totals: dict[str, Any]
    num_problems: int
    prm_tokens_per_completion: float
    greedy: bool
    independent: bool

    def at(
        self, record: dict[str, Any], tokens: np.ndarray, steps: np.ndarray
    ) -> dict[str, list[float]]:
        spent = record.get("compute")
        if self.independent:
            factor = [1.0 if self.greedy else float(k) for k in self.ns]
            n = self.ns[-1]
            # the record's FLOPs are those of all n samples (greedy: of its one sample)
            share = [1.0 if self.greedy else k / n for k in self.ns]
            out = {
                "gen_tokens": [f * float(tokens.mean()) for f in factor],
                "prm_tokens": [f * self.prm_tokens_per_completion for f in factor],
                "prm_steps": [f * float(steps.mean()) for f in factor],
            }
            for name, key in SPENT[3:]:
                value = _number((spent or {}).get(key))
                out[name] = [f * value for f in share]
            return out
        out = {}
        for name, key in SPENT:
            if spent is not None:
                value = _number(spent.get(key))
            else:
                value = float(self.totals.get(key, math.nan) or 0) / self.num_problems
                if name in ("gen_flops", "prm_flops", "flops") and key not in self.totals:
                    value = math.nan
            out[name] = [value if k == self.ns[-1] else math.nan for k in self.ns]
        return out


def _number(value: Any) -> float:
    """A recorded quantity as a float; null (could not be counted) is NaN."""
    return math.nan if value is None else float(value)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Levels as integers when they all are; subjects as strings."""
    if "level" in frame:
        numeric = pd.to_numeric(frame["level"], errors="coerce")
        if numeric.notna().sum() == frame["level"].notna().sum():
            frame["level"] = numeric.astype("Int64")
        else:
            frame["level"] = frame["level"].map(lambda v: None if v is None else str(v))
    if "subject" in frame:
        frame["subject"] = frame["subject"].map(
            lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
        )
    return frame


def save(
    frame: pd.DataFrame, out: Path, name: str, formats: Iterable[str] = ("parquet", "csv")
) -> list[Path]:
    """Write a table as parquet and/or CSV; returns the written paths."""
    paths = []
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
        paths.append(path)
    return paths
