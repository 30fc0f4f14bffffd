"""report.md: the writer that renders an `Analysis` section by section, drawing each figure
where it is referenced (the answers, per setting the accuracy curves, the hot-vs-cold table,
the best temperatures, the heatmap, the mix, the oracle, diversity; then compute)."""

from __future__ import annotations

import logging
import math
import re
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from hotncold.analyze import adaptive, plots, tables
from hotncold.analyze.tables import Analysis, Options, scope_key, scope_label
from hotncold.evaluation.metrics import METHODS

log = logging.getLogger(__name__)

RESCORED_NOTE = (
    "- Re-scored runs (`python -m hotncold.rescore`) are settings of their own, labelled "
    "`<scoring PRM>, re-scoring <source PRM>'s samples`, and are never pooled with runs "
    "generated with the scoring PRM: a re-scored beam search or DVTS keeps the samples its "
    "original PRM guided (`guided_by`); only its final selection uses the new PRM "
    "(`scored_by`). A run guided by the new PRM would have searched differently."
)


def _pts(x: float, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _ci(lo: float, hi: float) -> str:
    return f"[{_pts(lo)}, {_pts(hi)}]"


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"


def _temp(value: float) -> str:
    return f"{value:g}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def _diff(row: pd.Series) -> str:
    """A difference in points with its interval, starred when the interval excludes 0."""
    star = " *" if row["significant"] else ""
    return f"{_pts(row['mean'], True)} {_ci(row['lo'], row['hi'])}{star}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def verdict(row: pd.Series, hot: float, cold: float, level: float) -> str:
    """One line on hot minus cold (a `hot_vs_cold` comparison row)."""
    scope = scope_label(row["scope"], row["scope_value"])
    ci = f"{100 * level:g}% CI"
    problems, seeds = _count(row["problems"], "problem"), _count(row["seeds"], "seed")
    sample = f"{problems} × {seeds}, {row['method']}"
    if not row["significant"]:
        return (
            f"{scope}: no significant difference between hot ({_temp(hot)}) and cold "
            f"({_temp(cold)}) at N={row['N']} (hot − cold {_pts(row['mean'], True)} points, "
            f"{ci} {_ci(row['lo'], row['hi'])}; {sample})"
        )
    if row["mean"] > 0:
        return (
            f"{scope}: hot ({_temp(hot)}) beats cold ({_temp(cold)}) by "
            f"{_pts(row['mean'], True)} points at N={row['N']}, {ci} "
            f"{_ci(row['lo'], row['hi'])} ({sample})"
        )
    return (
        f"{scope}: cold ({_temp(cold)}) beats hot ({_temp(hot)}) by "
        f"{_pts(-row['mean'], True)} points at N={row['N']}, {ci} "
        f"{_ci(-row['hi'], -row['lo'])} ({sample})"
    )


def write_report(a: Analysis, out: Path, opts: Options, command: str | None = None) -> Path:
    """Write `out`/report.md for the analysis `a` (its figures into `out`/figures)."""
    path = out / "report.md"
    path.write_text(_Writer(a, out, opts, command).write())
    return path


class _Writer:
    """Builds report.md section by section, drawing each figure where it is referenced."""

    def __init__(self, a: Analysis, out: Path, opts: Options, command: str | None) -> None:
        self.a, self.out, self.opts, self.command = a, out, opts, command
        self.figures = out / "figures"
        self.settings = a.collection.settings
        self.labels = dict(zip(a.configs["config"], a.configs["temperature"]))
        self.ci = f"{100 * opts.level:g}% CI"

    def write(self) -> str:
        parts = [self._header(), self._answers(), self._runs(), self._prms()]
        for setting, label in self.settings.items():
            parts.append(self._setting(setting, label))
        parts.append(adaptive.section(self.a, self.opts))
        parts.append(self._compute())
        parts.append(self._files())
        return "\n\n".join(p for p in parts if p) + "\n"

    # -- header, answers, runs ------------------------------------------------------------

    def _header(self) -> str:
        o = self.opts
        lines = [
            "# hotncold analysis: when does hot beat cold?",
            "",
            f"Made {datetime.now(UTC).isoformat(timespec='seconds')}"
            + (f" by `{self.command}`" if self.command else "")
            + ".",
            "",
            f"- {_count(len(self.a.collection.runs), 'finished run')} in "
            f"{_count(len(self.a.configs), 'configuration')} and "
            f"{_count(len(self.settings), 'setting')}; "
            f"{_count(len(self.a.collection.skipped), 'run')} skipped (see Runs).",
            f"- Accuracies are in points (percent). Headline selection method: `{o.method}`. "
            f"Intervals: {self.ci}, percentile bootstrap over problems and seeds "
            f"({o.resamples} resamples, seed {o.seed}); differences are paired by problem and "
            "seed. 'No significant difference' means the interval contains 0. Many intervals "
            "are shown and none is corrected for multiple comparisons.",
            "- A *setting* is everything but the seed and the temperature schedule; "
            "a *configuration* is a setting with one schedule; seeds are its replicates.",
        ]
        runs = self.a.collection.runs
        if "source_prm" in runs and runs["source_prm"].notna().any():
            lines.append(RESCORED_NOTE)
        return "\n".join(lines)

    def _answers(self) -> str:
        lines = ["## Answers", ""]
        hc = self.a.comparisons[
            (self.a.comparisons["kind"] == "hot_vs_cold")
            & (self.a.comparisons["method"] == self.opts.method)
            & (self.a.comparisons["scope"] != "subject")
        ]
        if hc.empty:
            lines.append(
                "No setting has two single-temperature configurations to compare "
                "(hot vs cold needs at least two)."
            )
            return "\n".join(lines)
        for setting, label in self.settings.items():
            mine = hc[hc["setting"] == setting]
            if mine.empty:
                continue
            top = mine["N"].max()
            hot, cold = self._hot_cold(setting)
            lines.append(f"**{label}** (hot {hot['temperature']}, cold {cold['temperature']}):")
            lines.append("")
            for _, row in mine[mine["N"] == top].iterrows():
                lines.append(
                    "- " + verdict(row, hot["temp_value"], cold["temp_value"], self.opts.level)
                )
            lines.append("")
        return "\n".join(lines).rstrip()

    def _hot_cold(self, setting: str) -> tuple[pd.Series, pd.Series]:
        chosen = tables.hot_and_cold(
            self.a.configs[self.a.configs["setting"] == setting], self.opts
        )
        assert chosen is not None
        return chosen

    def _runs(self) -> str:
        lines = ["## Runs", ""]
        rows = []
        for _, c in self.a.configs.iterrows():
            rows.append(
                [
                    self.settings[c["setting"]],
                    c["temperature"],
                    c["temp_kind"],
                    c["seed_list"],
                    c["problems"],
                    c["runs"],
                ]
            )
        lines.append(_table(["setting", "temperature", "kind", "seeds", "problems", "runs"], rows))
        skipped = self.a.collection.skipped
        if skipped:
            lines += ["", f"Skipped {_count(len(skipped), 'run')}:", ""]
            lines += [f"- `{s.path}`: {s.reason}" for s in skipped]
        return "\n".join(lines)

    # -- one setting ------------------------------------------------------------------------

    def _setting(self, setting: str, label: str) -> str:
        configs = self.a.configs[self.a.configs["setting"] == setting]
        table = self.a.summary[self.a.summary["setting"] == setting]
        first = configs.iloc[0]
        slug = _slug(f"{first['approach']}_n{first['n']}_{setting}")
        parts = [f"## Setting: {label}", self._accuracy(table, label, slug)]
        parts.append(self._selection(setting, table))
        singles = configs[configs["temp_kind"] == "single"]
        if len(singles) >= 2:
            if tables.hot_and_cold(configs, self.opts) is not None:
                parts.append(self._hot_vs_cold(setting, label, slug))
            else:
                parts.append(
                    f"Hot vs cold: --hot {self.opts.hot} / --cold {self.opts.cold} name no two "
                    f"different single temperatures of this setting "
                    f"({', '.join(singles['temperature'])})."
                )
            parts += [
                self._best(setting),
                self._heatmap(table, label, slug),
                self._mix(setting),
                self._oracle(setting, label, slug),
            ]
        else:
            parts.append(
                "Hot vs cold, best temperature and oracle need at least two single-temperature "
                f"configurations; this setting has {len(singles)}."
            )
            parts.append(self._heatmap(table, label, slug))
        parts.append(self._diversity(setting, label, slug))
        return "\n\n".join(p for p in parts if p)

    def _accuracy(self, table: pd.DataFrame, label: str, slug: str) -> str:
        overall = table[table["scope"] == "overall"]
        path = plots.accuracy_vs_n(
            overall, self.labels, label, self.figures / f"accuracy_vs_n_{slug}.png"
        )
        ns = sorted(overall["N"].unique())
        rows = []
        for method in METHODS:
            for config in overall["config"].unique():
                line = overall[(overall["config"] == config) & (overall["method"] == method)]
                cells = {
                    r["N"]: f"{_pts(r['mean'])} {_ci(r['lo'], r['hi'])}" for _, r in line.iterrows()
                }
                rows.append([self.labels[config], method, *(cells.get(k, "–") for k in ns)])
        return "\n".join(
            [
                "### Accuracy vs N",
                "",
                f"Mean over problems and seeds, {self.ci} in brackets.",
                "",
                f"![accuracy vs N]({path.relative_to(self.out)})",
                "",
                _table(["temperature", "method", *(f"N={k}" for k in ns)], rows),
            ]
        )

    def _hot_vs_cold(self, setting: str, label: str, slug: str) -> str:
        hot, cold = self._hot_cold(setting)
        cmp = self.a.comparisons
        rows = cmp[
            (cmp["kind"] == "hot_vs_cold")
            & (cmp["setting"] == setting)
            & (cmp["method"] == self.opts.method)
        ].copy()
        rows["scope_label"] = [
            scope_label(s, v) for s, v in zip(rows["scope"], rows["scope_value"])
        ]
        drawn = rows[rows["scope"] != "subject"]
        path = plots.differences(
            drawn,
            f"{label}: hot {hot['temperature']} − cold {cold['temperature']} ({self.opts.method})",
            "hot − cold (points)",
            self.figures / f"hot_vs_cold_{slug}.png",
        )
        ns = sorted(rows["N"].unique())
        body = []
        for scope in dict.fromkeys(rows["scope_label"]):
            line = rows[rows["scope_label"] == scope].set_index("N")
            body.append(
                [
                    scope,
                    *(_diff(line.loc[k]) for k in ns),
                ]
            )
        top = rows[(rows["N"] == rows["N"].max()) & (rows["scope"] != "subject")]
        lines = [
            f"### Hot ({hot['temperature']}) vs cold ({cold['temperature']})",
            "",
            f"Paired difference hot − cold in points, `{self.opts.method}`, {self.ci} "
            "(`*`: the interval excludes 0). Other methods are in comparisons.csv.",
            "",
            f"At N={rows['N'].max()}:",
            "",
        ]
        for _, r in top.iterrows():
            lines.append("- " + verdict(r, hot["temp_value"], cold["temp_value"], self.opts.level))
        lines += [
            "",
            f"![hot vs cold]({path.relative_to(self.out)})",
            "",
            _table(["scope", *(f"N={k}" for k in ns)], body),
        ]
        return "\n".join(lines)

    def _best(self, setting: str) -> str:
        best = self.a.best[self.a.best["setting"] == setting].copy()
        if best.empty:
            return ""
        best["scope_label"] = [
            scope_label(s, v) for s, v in zip(best["scope"], best["scope_value"])
        ]
        ns = sorted(best["N"].unique())
        body = []
        for scope in dict.fromkeys(best["scope_label"]):
            line = best[best["scope_label"] == scope].set_index("N")
            body.append(
                [
                    scope,
                    *(
                        f"{line.at[k, 'best']} ({_pts(line.at[k, 'mean'])})"
                        + (" *" if line.at[k, "significant"] else "")
                        if k in line.index
                        else "–"
                        for k in ns
                    ),
                ]
            )
        lines = [
            "### Best temperature at each N",
            "",
            f"The single temperature with the highest `{self.opts.method}` accuracy (ties "
            "joined by `=`); `*` when it beats every other single temperature with an interval "
            "excluding 0.",
            "",
            _table(["scope", *(f"N={k}" for k in ns)], body),
        ]
        pairs = self.a.comparisons[
            (self.a.comparisons["kind"] == "pair")
            & (self.a.comparisons["setting"] == setting)
            & (self.a.comparisons["scope"] != "subject")
        ]
        top = pairs["N"].max() if not pairs.empty else None
        if top is not None:
            rows = []
            for _, r in pairs[pairs["N"] == top].iterrows():
                rows.append(
                    [
                        scope_label(r["scope"], r["scope_value"]),
                        f"{r['a_temperature']} − {r['b_temperature']}",
                        _diff(r),
                        f"{r['problems']} × {r['seeds']}",
                    ]
                )
            lines += [
                "",
                f"Every pair of single temperatures at N={top} (paired, {self.ci}):",
                "",
                _table(["scope", "difference", "points", "problems × seeds"], rows),
            ]
        return "\n".join(lines)

    def _heatmap(self, table: pd.DataFrame, label: str, slug: str) -> str:
        top = table["N"].max()
        cells = table[
            (table["scope"] == "level")
            & (table["method"] == self.opts.method)
            & (table["N"] == top)
        ]
        if cells.empty:
            return ""
        order = (
            cells.drop_duplicates("config")
            .sort_values(["temp_kind", "temp_value", "temperature"], key=_kind_order)["config"]
            .tolist()
        )
        grid = cells.pivot(index="scope_value", columns="config", values="mean")[order]
        grid = grid.loc[sorted(grid.index, key=scope_key)]
        grid.index = [f"level {v}" for v in grid.index]
        grid.columns = [self.labels[c] for c in grid.columns]
        path = plots.heatmap(
            grid,
            f"{label}: {self.opts.method} at N={top}",
            self.figures / f"level_heatmap_{slug}.png",
        )
        rows = [[i, *(_pts(v) for v in grid.loc[i])] for i in grid.index]
        return "\n".join(
            [
                f"### Level × temperature (N={top})",
                "",
                f"![level x temperature]({path.relative_to(self.out)})",
                "",
                _table(["level", *grid.columns], rows),
            ]
        )

    def _mix(self, setting: str) -> str:
        within = self.a.within[self.a.within["setting"] == setting]
        if within.empty:
            return ""
        point = 100 * self.opts.point
        points = f"{point:g} point{'' if point == 1 else 's'}"
        lines = [
            "### Multi-temperature mix vs the best single temperature",
            "",
            f"How often each mix (or schedule) is within {points} of the best single "
            f"temperature of the same scope and N (`{self.opts.method}`, point estimates), and "
            "its paired difference to that temperature at the largest N:",
            "",
        ]
        cmp = self.a.comparisons
        for config, part in within.groupby("config", sort=False):
            overall = part[part["scope"] == "overall"]
            lines.append(
                f"- **{self.labels[config]}**: within {points} in "
                f"{int(part['within'].sum())} of {len(part)} (scope, N) cells; overall in "
                f"{int(overall['within'].sum())} of {len(overall)} values of N."
            )
        rows = []
        top = within["N"].max()
        mine = cmp[
            (cmp["kind"] == "mix_vs_best")
            & (cmp["setting"] == setting)
            & (cmp["N"] == top)
            & (cmp["scope"] != "subject")
        ]
        for _, r in mine.iterrows():
            rows.append(
                [
                    self.labels[r["a"]],
                    scope_label(r["scope"], r["scope_value"]),
                    r["b_temperature"],
                    _diff(r),
                ]
            )
        lines += [
            "",
            _table(["mix", "scope", f"best single at N={top}", "mix − best (points)"], rows),
        ]
        return "\n".join(lines)

    def _oracle(self, setting: str, label: str, slug: str) -> str:
        gaps = self.a.oracle_gaps
        gaps = gaps[gaps["setting"] == setting] if not gaps.empty else gaps
        if gaps.empty:
            return ""
        path = plots.oracle(
            gaps, f"{label}: per-problem oracle temperature", self.figures / f"oracle_{slug}.png"
        )
        ns = sorted(gaps["N"].unique())
        rows = []
        for k in ns:
            part = gaps[gaps["N"] == k].sort_values("gap")
            best = part.iloc[0]
            rows.append(
                [
                    f"N={k}",
                    _pts(best["oracle"]),
                    *(
                        f"{_pts(r['accuracy'])} "
                        f"(gap {_pts(r['gap'])} {_ci(r['gap_lo'], r['gap_hi'])})"
                        for _, r in part.sort_values("temp_value").iterrows()
                    ),
                    best["temperature"],
                ]
            )
        temps = gaps.drop_duplicates("temperature").sort_values("temp_value")["temperature"]
        shares = self.a.oracle_shares
        shares = shares[(shares["setting"] == setting) & (shares["N"] == max(ns))]
        share_rows = []
        for (scope, value), part in shares.groupby(["scope", "scope_value"], sort=False):
            part = part.set_index("temperature")
            first = part.iloc[0]
            share_rows.append(
                [
                    scope_label(scope, value),
                    *(_pts(part.at[t, "share"]) for t in temps),
                    f"{first['problems'] - first['indifferent']} of {first['problems']}",
                ]
            )
        return "\n".join(
            [
                "### Per-problem oracle temperature",
                "",
                f"For each problem (seeds averaged), the oracle takes the single temperature "
                f"with the best `{self.opts.method}` accuracy on it. A fixed choice's gap is "
                "oracle − fixed accuracy in points (bootstrap over problems). The oracle chooses "
                "with hindsight on the same samples, so part of any gap is noise.",
                "",
                f"![oracle]({path.relative_to(self.out)})",
                "",
                _table(["N", "oracle", *temps, "best fixed"], rows),
                "",
                f"Share of problems (%) on which each temperature is the oracle's choice at "
                f"N={max(ns)}, among problems where the temperatures differ (ties split):",
                "",
                _table(["scope", *temps, "problems that differ"], share_rows),
            ]
        )

    def _diversity(self, setting: str, label: str, slug: str) -> str:
        rows = self.a.diversity[self.a.diversity["setting"] == setting].sort_values(
            ["temp_kind", "temp_value", "temperature"], key=_kind_order
        )
        if rows.empty:
            return ""
        path = plots.diversity(
            rows, f"{label}: diversity and accuracy", self.figures / f"diversity_{slug}.png"
        )
        body = [
            [
                r["temperature"],
                _pts(r["accuracy"]),
                _pts(r["coverage"]),
                _pts(r["pass_at_1"]),
                f"{r['distinct_answers']:.2f}",
                _pts(r["answered"]),
                f"{r['score_std']:.3f}",
                f"{r['mean_tokens']:.1f}",
                _pts(r["finished_share"]),
            ]
            for _, r in rows.iterrows()
        ]
        per_level = self.a.collection.problems
        per_level = per_level[per_level["setting"] == setting]
        level_rows = []
        if per_level["level"].notna().any():
            grid = per_level.pivot_table(
                index="level", columns="config", values="distinct_answers", aggfunc="mean"
            )
            grid = grid[[c for c in rows["config"] if c in grid.columns]]
            level_rows = [
                [f"level {i}", *(f"{v:.2f}" for v in grid.loc[i])]
                for i in sorted(grid.index, key=scope_key)
            ]
            level_headers = ["level", *(self.labels[c] for c in grid.columns)]
        lines = [
            "### Diversity: why",
            "",
            f"Per temperature: `{self.opts.method}` accuracy and coverage (pass@n) at N=n, "
            "pass@1, distinct final answers among the n completions, share of completions with "
            "an answer, PRM score spread (standard deviation of solution scores within a "
            "problem), tokens per completion, and share that ended on their own (not cut by the "
            "token limit); means over problems and seeds.",
            "",
            f"![diversity]({path.relative_to(self.out)})",
            "",
            _table(
                [
                    "temperature",
                    "accuracy",
                    "coverage",
                    "pass@1",
                    "distinct answers",
                    "answered",
                    "score spread",
                    "tokens",
                    "finished",
                ],
                body,
            ),
        ]
        if level_rows:
            lines += [
                "",
                "Distinct final answers per level:",
                "",
                _table(level_headers, level_rows),
            ]
        return "\n".join(lines)

    def _prms(self) -> str:
        """PRMs compared on identical samples: each re-scored configuration against the run
        (or the other re-scorings) whose completions it scored, headline method, overall."""
        cmp = self.a.prm_comparisons
        if cmp.empty:
            return ""
        mine = cmp[(cmp["scope"] == "overall") & (cmp["method"] == self.opts.method)]
        top = mine.groupby(["a", "b"])["N"].transform("max")
        rows = []
        for _, r in mine[mine["N"] == top].iterrows():
            rows.append(
                [
                    f"{r['approach']} n={r['n']} {r['temperature']}",
                    r["guided_by"] if isinstance(r["guided_by"], str) else "– (Best-of-N)",
                    r["a_scored_by"],
                    r["b_scored_by"],
                    r["N"],
                    _diff(r),
                    r["problems"],
                    r["seeds"],
                ]
            )
        return "\n".join(
            [
                "## PRMs on identical samples",
                "",
                f"Each row compares two PRMs scoring the very same completions (a run and its "
                f"re-scorings by `python -m hotncold.rescore`): `{self.opts.method}` accuracy "
                f"scored by A minus scored by B at the largest N, {self.ci} from a paired "
                "bootstrap over the same (seed, problem) cells, * when it excludes 0. Every "
                "method, N and level is in `prm_comparisons.csv`.",
                "",
                RESCORED_NOTE.removeprefix("- "),
                "",
                _table(
                    [
                        "samples",
                        "guided by",
                        "A: scored by",
                        "B: scored by",
                        "N",
                        "A − B",
                        "problems",
                        "seeds",
                    ],
                    rows,
                ),
            ]
        )

    def _selection(self, setting: str, table: pd.DataFrame) -> str:
        """Soft Best-of-N against the selection temperature tau, per sampling temperature."""
        sel = self.a.selection
        if sel.empty:
            return ""
        mine = sel[(sel["setting"] == setting) & (sel["scope"] == "overall")]
        if mine.empty:
            return ""
        ns = sorted(mine["N"].unique())
        overall = table[table["scope"] == "overall"]
        rows = []
        for config in mine["config"].unique():
            naive = overall[(overall["config"] == config) & (overall["method"] == "naive")]
            cells = {
                r["N"]: f"{_pts(r['mean'])} {_ci(r['lo'], r['hi'])}" for _, r in naive.iterrows()
            }
            rows.append([self.labels[config], "naive (tau -> 0)", *(cells.get(k, "–") for k in ns)])
            for tau, line in mine[mine["config"] == config].groupby("tau", sort=True):
                cells = {
                    r["N"]: f"{_pts(r['mean'])} {_ci(r['lo'], r['hi'])}" for _, r in line.iterrows()
                }
                rows.append(
                    [self.labels[config], f"tau = {tau:g}", *(cells.get(k, "–") for k in ns)]
                )
        return "\n".join(
            [
                "### Selection temperature (soft Best-of-N)",
                "",
                "The second temperature, over verifier scores: the answer of a completion picked "
                "with probability proportional to exp(score / tau), its expected accuracy "
                "computed exactly (no sampling of the pick). tau -> 0 is `naive`; a large tau is "
                "a uniform pick (pass@1). Rows: sampling temperature x tau, "
                f"{self.ci} in brackets (`selection.csv` has every level).",
                "",
                _table(["sampling temperature", "selection", *(f"N={k}" for k in ns)], rows),
            ]
        )

    # -- compute ----------------------------------------------------------------------------

    def _compute(self) -> str:
        s = self.a.summary
        overall = s[(s["scope"] == "overall") & (s["method"] == self.opts.method)]
        lines = [
            "## Compute",
            "",
            "Accuracy against the compute spent per problem, in generated tokens and in FLOPs "
            "of the generator and the PRM together (about 2 x parameters x tokens computed, "
            "from each model's config.json; prefix-cached tokens are free, a model-free "
            "verifier costs 0; README, Compute). Best-of-N samples are independent: at budget "
            "N a problem costs N times the mean tokens of its completions, N/n of its FLOPs "
            "(greedy: one completion at any N); PRM tokens are charged at the run's mean per "
            "completion. A step-level search (beam search, DVTS) at budget n is not n/N "
            "searches at budget N, so its compute is known only at N = n (each problem's "
            "recorded compute, or the run's totals per problem for older runs). When the PRM "
            "processed no model tokens (a model-free verifier), PRM steps scored stand in for "
            "PRM tokens.",
        ]
        for family, label in self.a.collection.families.items():
            rows = overall[overall["family"] == family]
            labels = _config_labels(rows)
            prm_column = "prm_tokens" if (rows["prm_tokens"].fillna(0) > 0).any() else "prm_steps"
            path = plots.compute(
                rows,
                labels,
                prm_column,
                f"{label}: {self.opts.method} accuracy vs compute",
                self.figures / f"compute_{_slug(family)}.png",
            )
            ns = sorted(rows["N"].unique())
            lines += ["", f"### {label}", "", f"![compute]({path.relative_to(self.out)})"]
            for column, unit, fmt in (
                ("gen_tokens", "generated tokens", "{:.0f}"),
                ("flops", "FLOPs (generator + PRM)", "{:.2g}"),
            ):
                body = []
                for config in labels:
                    line = rows[rows["config"] == config].set_index("N")
                    body.append(
                        [
                            labels[config],
                            *(
                                f"{_pts(line.at[k, 'mean'])} @ {fmt.format(line.at[k, column])}"
                                if k in line.index and not math.isnan(line.at[k, column])
                                else "–"
                                for k in ns
                            ),
                        ]
                    )
                lines += [
                    "",
                    f"`{self.opts.method}` accuracy @ {unit} per problem:",
                    "",
                    _table(["configuration", *(f"N={k}" for k in ns)], body),
                ]
            for table, budget, unit, fmt in (
                (self.a.equal_compute, "tokens", "generated tokens", "{:.0f}"),
                (self.a.equal_flops, "flops", "FLOPs", "{:.2g}"),
            ):
                eq = table[table["family"] == family]
                if eq.empty or not eq["accuracy"].notna().any():
                    continue
                grid = eq.pivot(index=budget, columns="config", values="accuracy")
                grid = grid[[c for c in labels if c in grid.columns]]
                eq_rows = [
                    [fmt.format(t), *(_pts(v) for v in grid.loc[t])] for t in sorted(grid.index)
                ]
                lines += [
                    "",
                    f"Equal compute: accuracy at the same {unit} per problem, interpolated in "
                    f"log {unit} between each configuration's budgets (– outside its range):",
                    "",
                    _table([budget, *(labels[c] for c in grid.columns)], eq_rows),
                ]
        return "\n".join(lines)

    def _files(self) -> str:
        return "\n".join(
            [
                "## Files",
                "",
                "- `results.parquet`/`.csv`: one row per run × problem × N × method (the tidy "
                "table every number here comes from; columns in README.md, Analysis).",
                "- `problems.parquet`/`.csv`: one row per run × problem (diversity, tokens).",
                "- `runs.csv`, `summary.csv` (means and intervals per configuration × method × "
                "N × scope, with compute), `comparisons.csv` (paired differences), "
                "`best_temperature.csv`, `mix_within_point.csv`, `oracle.csv`, "
                "`oracle_shares.csv`, `diversity.csv`, `equal_compute.csv` (equal generated "
                "tokens), `equal_flops.csv` (equal FLOPs), `selection.csv` (soft Best-of-N by "
                "tau), `prm_comparisons.csv` (PRMs on identical samples), "
                "`adaptive_chosen.csv`, `adaptive_versus.csv`, `adaptive_regret.csv` (adaptive "
                "Best-of-N's choices, against the best fixed temperature, regret).",
                "- `figures/*.png`.",
            ]
        )


def _kind_order(column: pd.Series) -> pd.Series:
    if column.name == "temp_kind":
        return column.map({"single": 0, "mix": 1, "schedule": 2}).fillna(3)
    return column


def _config_labels(rows: pd.DataFrame) -> dict[str, str]:
    """`approach n=.. temperature` per configuration, with the setting id where ambiguous."""
    first = rows.drop_duplicates("config").assign(rank=rows["temp_kind"].map(tables.KIND_RANK))
    first = first.sort_values(["approach", "n", "rank", "temp_value", "temperature"])
    base = {
        r["config"]: f"{r['approach']} n={r['n']} {r['temperature']}" for _, r in first.iterrows()
    }
    counts = pd.Series(list(base.values())).value_counts()
    return {
        c: (label if counts[label] == 1 else f"{label} [{c.split(':')[0]}]")
        for c, label in base.items()
    }


def terminal_summary(a: Analysis, opts: Options, report: Path) -> str:
    """The verdict on one screen: per setting, the headline accuracy at every N of each
    temperature schedule (cold, hot, mixes) with its interval and hot minus cold; the answer at
    the largest N, overall and by level; then where the full report is. The numbers are the
    report's own (`summary`, `comparisons`)."""
    blocks = [_terminal_setting(a, opts, s, label) for s, label in a.collection.settings.items()]
    skipped = len(a.collection.skipped)
    if skipped:
        blocks.append(f"{_count(skipped, 'unfinished run')} skipped (listed in the report)")
    blocks.append(f"full report: {report}")
    return "\n\n".join(blocks)


CELL = 17
"""Least width of one N column of the terminal summary: `+35.0 [-20, 50]*` and a space (wider
when a cell is: `-100.0 [-100, -100]*`)."""
WIDTH = 100
"""Sentences of the terminal summary wrap at this width."""


def _cell(mean: float, lo: float, hi: float, signed: bool = False, star: bool = False) -> str:
    return f"{_pts(mean, signed)} [{100 * lo:.0f}, {100 * hi:.0f}]" + ("*" if star else " ")


def _columns(rows: list[tuple[str, list[str]]], width: int) -> list[str]:
    """Rows of a name and its cells, the cells right-aligned in columns at least `CELL` wide
    and always a space apart."""
    cell = max([CELL, *(len(c) + 1 for _, cells in rows for c in cells)])
    return [f"{name:<{width}}" + "".join(f"{c:>{cell}}" for c in cells) for name, cells in rows]


def _terminal_setting(a: Analysis, opts: Options, setting: str, label: str) -> str:
    configs = a.configs[a.configs["setting"] == setting]
    rows = a.summary[
        (a.summary["setting"] == setting)
        & (a.summary["scope"] == "overall")
        & (a.summary["method"] == opts.method)
    ]
    ns = sorted(rows["N"].unique())
    chosen = tables.hot_and_cold(configs, opts)
    roles = {} if chosen is None else {chosen[1]["config"]: "cold", chosen[0]["config"]: "hot"}
    names = {
        c["config"]: f"{c['temperature']} ({roles.get(c['config'], c['temp_kind'])})"
        for _, c in configs.iterrows()
    }
    width = max(len(name) for name in [*names.values(), "hot − cold"]) + 2
    problems, seeds = int(configs["problems"].max()), int(configs["seeds"].max())
    lines = [
        f"{label}: {_count(problems, 'problem')} x {_count(seeds, 'seed')}",
        f"{opts.method} accuracy (%) with {100 * opts.level:g}% intervals:",
    ]
    table: list[tuple[str, list[str]]] = [("", [f"N={k}" for k in ns])]
    for config, name in names.items():
        line = rows[rows["config"] == config].set_index("N")
        cells = [
            _cell(line.at[k, "mean"], line.at[k, "lo"], line.at[k, "hi"])
            if k in line.index
            else "–"
            for k in ns
        ]
        table.append((name, cells))
    if chosen is None:
        lines += _columns(table, width)
        lines.append("(hot vs cold needs two single temperatures)")
        return "\n".join(lines)
    hot, cold = chosen
    cmp = a.comparisons[
        (a.comparisons["kind"] == "hot_vs_cold")
        & (a.comparisons["setting"] == setting)
        & (a.comparisons["method"] == opts.method)
    ]
    overall = cmp[cmp["scope"] == "overall"].set_index("N")
    cells = [
        _cell(
            overall.at[k, "mean"],
            overall.at[k, "lo"],
            overall.at[k, "hi"],
            signed=True,
            star=bool(overall.at[k, "significant"]),
        )
        if k in overall.index
        else "–"
        for k in ns
    ]
    table.append(("hot − cold", cells))
    lines += _columns(table, width)
    lines[-1] += "  (*: interval excludes 0)"
    top = int(cmp["N"].max())
    at_top = cmp[cmp["N"] == top]
    lines.append("")
    for _, row in at_top[at_top["scope"] == "overall"].iterrows():
        answer = verdict(row, hot["temp_value"], cold["temp_value"], opts.level)
        lines += textwrap.wrap(answer, WIDTH, subsequent_indent="  ")
    levels = at_top[at_top["scope"] == "level"]
    if len(levels):
        parts = [
            f"{r['scope_value']}: "
            + _cell(r["mean"], r["lo"], r["hi"], signed=True, star=bool(r["significant"])).strip()
            for _, r in levels.iterrows()
        ]
        text = f"hot − cold at N={top} by level: " + ", ".join(parts)
        lines += textwrap.wrap(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False)
    return "\n".join(lines)
