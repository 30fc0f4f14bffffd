"""Adaptive Best-of-N against the fixed temperatures it chooses among: the tables and their
report section.

For every adaptive_bon configuration, its baselines are the Best-of-N single-temperature
configurations of the same family (same model, PRM, dataset and settings; approach and budget
aside) at the same n. All figures are at N = n, the budget the adaptive policy ran at (at N < n
its metrics average subsets of one adaptive run's samples, which is no adaptive run), with the
headline selection method.

- `chosen`: per scope (overall, each level, each subject) the share of problems x seeds on
  which the probe chose each temperature for the rest, and the mean disagreement it read;
- `versus`: per scope likewise, adaptive minus the best fixed temperature of that scope (the
  fixed temperature with the best mean accuracy there: chosen with hindsight, which favours
  the baseline), paired by problem and seed (by problem when they share no seed), with its
  bootstrap interval;
- `regret`: per problem (seeds averaged), regret against the best fixed temperature (overall
  best: best fixed accuracy on the problem minus adaptive's, negative when adaptive did
  better) and against the per-problem oracle (the best fixed temperature on that problem,
  `tables.oracle`'s yardstick), as a mean with a bootstrap interval over problems and as a
  tail: the share of problems whose regret exceeds `TAIL` (0.1); overall and per level.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from hotncold.analyze.stats import bootstrap, rng_for
from hotncold.analyze.tables import Analysis, Options, paired, scope_label, scopes

TAIL = 0.1
"""Regret above this (in accuracy, 10 points) counts in the tail share."""


def is_adaptive(approach: pd.Series) -> pd.Series:
    return approach.astype(str).str.startswith("adaptive_bon")


def _baselines(results: pd.DataFrame, row: pd.Series) -> pd.DataFrame:
    return results[
        (results["approach"] == "best_of_n")
        & (results["temp_kind"] == "single")
        & (results["family"] == row["family"])
        & (results["n"] == row["n"])
    ]


def chosen_temperatures(problems: pd.DataFrame) -> pd.DataFrame:
    """Share of problems x seeds per chosen temperature, per adaptive config and scope."""
    if "adaptive_temperature" not in problems:
        return pd.DataFrame()
    mine = problems[is_adaptive(problems["approach"]) & problems["adaptive_temperature"].notna()]
    rows = []
    for config, frame in mine.groupby("config", sort=True):
        for scope, value, part in scopes(frame):
            counts = part["adaptive_temperature"].value_counts(normalize=True)
            for t, share in sorted(counts.items()):
                rows.append(
                    {
                        "config": config,
                        "approach": part["approach"].iloc[0],
                        "n": int(part["n"].iloc[0]),
                        "scope": scope,
                        "scope_value": value,
                        "chosen_temperature": float(t),
                        "share": float(share),
                        "cases": len(part),
                        "mean_disagreement": float(part["adaptive_disagreement"].mean()),
                    }
                )
    return pd.DataFrame(rows)


def versus_best_fixed(results: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Adaptive minus the best fixed temperature at the same n, per scope, paired."""
    rows = []
    for config, head, row, base in _with_baselines(results, opts):
        mine = _at_n(head, row["n"], opts)
        both = pd.concat([mine, base])
        for scope, value, part in scopes(both):
            fixed = part[part["config"] != config]
            if fixed.empty or part[part["config"] == config].empty:
                continue
            means = fixed.groupby("config")["accuracy"].mean()
            best = means.idxmax()
            result = paired(part, config, best, [opts.method], opts, ("adaptive", scope, value))
            for _, k, e, by_seed in result:
                rows.append(
                    {
                        "config": config,
                        "approach": row["approach"],
                        "n": int(k),
                        "scope": scope,
                        "scope_value": value,
                        "adaptive": float(part[part["config"] == config]["accuracy"].mean()),
                        "best_fixed": fixed.loc[fixed["config"] == best, "temperature"].iloc[0],
                        "best_fixed_accuracy": float(means[best]),
                        "diff": e.mean,
                        "diff_lo": e.lo,
                        "diff_hi": e.hi,
                        "problems": e.problems,
                        "seeds": e.seeds if by_seed else 0,
                    }
                )
    return pd.DataFrame(rows)


def regret(results: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Regret against the best fixed temperature and the per-problem oracle, per scope."""
    rows = []
    for config, head, row, base in _with_baselines(results, opts):
        fixed = base.groupby(["temperature", "uid"])["accuracy"].mean().unstack("temperature")
        fixed = fixed.dropna()
        mine = _at_n(head, row["n"], opts).groupby("uid")["accuracy"].mean()
        uids = fixed.index.intersection(mine.index)
        if uids.empty:
            continue
        fixed, mine = fixed.loc[uids], mine.loc[uids]
        best = fixed.mean().idxmax()
        levels = head.groupby("uid")["level"].first().reindex(uids)
        against = {"best_fixed": fixed[best] - mine, "oracle": fixed.max(axis=1) - mine}
        groups = [("overall", "", np.ones(len(uids), dtype=bool))]
        groups += [
            ("level", str(v), (levels == v).to_numpy()) for v in sorted(levels.dropna().unique())
        ]
        for scope, value, mask in groups:
            for yardstick, values in against.items():
                r = values.to_numpy()[mask]
                rng = rng_for(opts.seed, "regret", config, yardstick, scope, value)
                (e,) = bootstrap(r[None, None, :], opts.resamples, rng, opts.level)
                rows.append(
                    {
                        "config": config,
                        "approach": row["approach"],
                        "n": int(row["n"]),
                        "scope": scope,
                        "scope_value": value,
                        "against": yardstick,
                        "best_fixed": best,
                        "regret": e.mean,
                        "regret_lo": e.lo,
                        "regret_hi": e.hi,
                        "tail_share": float(np.mean(r > TAIL + 1e-12)) if len(r) else math.nan,
                        "problems": len(r),
                    }
                )
    return pd.DataFrame(rows)


def _heads(results: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    mine = results[is_adaptive(results["approach"])]
    yield from mine.groupby("config", sort=True)


def _with_baselines(
    results: pd.DataFrame, opts: Options
) -> Iterator[tuple[str, pd.DataFrame, pd.Series, pd.DataFrame]]:
    """Each adaptive config with its rows, its first row, and its fixed-temperature Best-of-N
    baselines at its n (configs without any baseline are skipped)."""
    for config, head in _heads(results):
        row = head.iloc[0]
        base = _at_n(_baselines(results, row), row["n"], opts)
        if not base.empty:
            yield config, head, row, base


def _at_n(frame: pd.DataFrame, n: int, opts: Options) -> pd.DataFrame:
    return frame[(frame["N"] == n) & (frame["method"] == opts.method)]


# -- the report section ---------------------------------------------------------------------


def _pts(x: float, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def section(a: Analysis, opts: Options) -> str:
    """The report's `Adaptive Best-of-N` section; empty without adaptive_bon runs."""
    if a.adaptive_chosen.empty and a.adaptive_versus.empty:
        return ""
    ci = f"{100 * opts.level:g}% CI"
    labels = dict(zip(a.configs["config"], a.configs["approach"] + " " + a.configs["temperature"]))
    lines = [
        "## Adaptive Best-of-N",
        "",
        "The probe's choice of temperature for the rest of the budget, and the adaptive runs "
        f"against Best-of-N at fixed temperatures of the same setting, at the same n "
        f"(`{opts.method}` accuracy at N = n, in points). The best fixed temperature is picked "
        "with hindsight on the same problems, which favours it.",
    ]
    chosen = a.adaptive_chosen
    for config, part in chosen.groupby("config", sort=True) if not chosen.empty else ():
        temps = sorted(part["chosen_temperature"].unique())
        rows = []
        for (scope, value), p in part.groupby(["scope", "scope_value"], sort=False):
            share = dict(zip(p["chosen_temperature"], p["share"]))
            rows.append(
                [
                    scope_label(scope, value),
                    *(_pts(share.get(t, 0.0)) for t in temps),
                    f"{p['mean_disagreement'].iloc[0]:.2f}",
                    int(p["cases"].iloc[0]),
                ]
            )
        lines += [
            "",
            f"**{labels.get(config, config)}**: temperature chosen for the rest (% of problems "
            "x seeds):",
            "",
            _table(
                ["scope", *(f"T={t:g}" for t in temps), "mean disagreement", "problems x seeds"],
                rows,
            ),
        ]
    versus = a.adaptive_versus
    if not versus.empty:
        rows = [
            [
                labels.get(r["config"], r["config"]),
                scope_label(r["scope"], r["scope_value"]),
                _pts(r["adaptive"]),
                f"{r['best_fixed']} ({_pts(r['best_fixed_accuracy'])})",
                f"{_pts(r['diff'], True)} [{_pts(r['diff_lo'], True)}, {_pts(r['diff_hi'], True)}]",
                r["problems"],
            ]
            for _, r in versus.iterrows()
        ]
        lines += [
            "",
            f"Adaptive − best fixed temperature, paired by problem and seed ({ci}):",
            "",
            _table(
                ["adaptive", "scope", "accuracy", "best fixed", "adaptive − best", "problems"],
                rows,
            ),
        ]
    reg = a.adaptive_regret
    if not reg.empty:
        rows = [
            [
                labels.get(r["config"], r["config"]),
                scope_label(r["scope"], r["scope_value"]),
                "best fixed" if r["against"] == "best_fixed" else "per-problem oracle",
                f"{_pts(r['regret'], True)} [{_pts(r['regret_lo'], True)}, "
                f"{_pts(r['regret_hi'], True)}]",
                _pts(r["tail_share"]),
                r["problems"],
            ]
            for _, r in reg.iterrows()
        ]
        lines += [
            "",
            f"Regret per problem (seeds averaged; yardstick minus adaptive, points, {ci}) and "
            f"its tail: % of problems with regret above {100 * TAIL:g} points:",
            "",
            _table(["adaptive", "scope", "against", "mean regret", "tail %", "problems"], rows),
        ]
    return "\n".join(lines)
