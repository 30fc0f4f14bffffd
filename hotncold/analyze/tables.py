"""The derived tables of a report: accuracy with intervals, paired temperature comparisons (the
report's hot-vs-cold table among them), the best temperature, the mix against the best single
temperature, the per-problem oracle, diversity, and accuracy at equal compute; `Analysis` holds
them all.

Everything is computed from the tidy `results`/`problems` tables of `collect`; accuracies stay
in [0, 1] here (the report prints points). Scopes are `overall`, each level and each subject.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hotncold.analyze.collect import Collection
from hotncold.analyze.stats import Estimate, bootstrap, rng_for
from hotncold.evaluation.metrics import METHODS

log = logging.getLogger(__name__)

CONFIG_COLUMNS = [
    "family",
    "setting",
    "config",
    "approach",
    "temperature",
    "temp_kind",
    "temp_value",
    "n",
    "model",
    "prm",
    "agg",
    "dataset",
    "guided_by",
    "scored_by",
    "source_prm",
]


@dataclass(frozen=True)
class Options:
    """How statistics are computed."""

    resamples: int = 2000
    """Bootstrap resamples per interval."""
    seed: int = 0
    """Seed of every resample (each statistic derives its own generator from it)."""
    level: float = 0.95
    """Confidence level of the percentile intervals."""
    method: str = "weighted"
    """Selection method of the headline statistics (hot vs cold lines, best temperature...)."""
    point: float = 0.01
    """'Within a point': the tolerance of the mix against the best single temperature."""
    hot: float | None = None
    """The hot temperature; None means the highest single temperature of a setting."""
    cold: float | None = None
    """The cold temperature; None means the lowest single temperature of a setting."""


@dataclass
class Analysis:
    """Everything a report holds, as tables (accuracies in [0, 1])."""

    collection: Collection
    configs: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    best: pd.DataFrame
    within: pd.DataFrame
    oracle_gaps: pd.DataFrame
    oracle_shares: pd.DataFrame
    diversity: pd.DataFrame
    equal_compute: pd.DataFrame
    """Accuracy at equal generated tokens per problem."""
    equal_flops: pd.DataFrame
    """Accuracy at equal FLOPs per problem, generator and PRM together."""
    files: list[Path] = field(default_factory=list)
    prm_comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    """PRMs compared on identical samples (a run and its re-scorings, `prm_comparisons`)."""
    selection: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Soft Best-of-N's accuracy per configuration x tau x N x scope (`selection_summary`)."""
    adaptive_chosen: pd.DataFrame = field(default_factory=pd.DataFrame)
    """adaptive_bon: share of problems per chosen temperature and scope (`analyze.adaptive`)."""
    adaptive_versus: pd.DataFrame = field(default_factory=pd.DataFrame)
    """adaptive_bon minus the best fixed temperature at the same n, paired, per scope."""
    adaptive_regret: pd.DataFrame = field(default_factory=pd.DataFrame)
    """adaptive_bon's regret against the best fixed temperature and the oracle, per scope."""


def scopes(frame: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(scope, value, rows): overall, then each level, then each subject."""
    yield "overall", "", frame
    if frame["level"].notna().any():
        for value, part in frame.groupby("level", sort=True, dropna=True):
            yield "level", str(value), part
    if frame["subject"].notna().any():
        for value, part in frame.groupby("subject", sort=True, dropna=True):
            yield "subject", str(value), part


def scope_label(scope: str, value: str) -> str:
    return "overall" if scope == "overall" else f"{scope} {value}"


def scope_key(value: object) -> tuple:
    """Sort key of level/subject values: numbers numerically, then text."""
    try:
        return (0, float(value), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def in_scope_order(frame: pd.DataFrame, then: Sequence[str] = ()) -> pd.DataFrame:
    """Rows ordered overall, levels (numerically), subjects, then by `then`."""
    if frame.empty:
        return frame
    rank = frame["scope"].map({"overall": 0, "level": 1, "subject": 2})
    key = frame["scope_value"].map(scope_key)
    order = pd.DataFrame({"rank": rank, "key": key}, index=frame.index)
    for column in then:
        order[column] = frame[column]
    return frame.loc[order.sort_values(["rank", "key", *then]).index].reset_index(drop=True)


KIND_RANK = {"single": 0, "mix": 1, "schedule": 2}


def _cube(
    frame: pd.DataFrame, keys: Sequence[str], seeds: Sequence[int], uids: Sequence[str]
) -> tuple[list[tuple], np.ndarray]:
    """`accuracy` as a (quantity, seed, problem) cube over the given axes, NaN where absent."""
    index = pd.MultiIndex.from_frame(frame[list(keys)])
    codes, uniques = index.factorize()
    seed_pos = pd.Index(seeds).get_indexer(frame["seed"])
    uid_pos = pd.Index(uids).get_indexer(frame["uid"])
    keep = (seed_pos >= 0) & (uid_pos >= 0)
    cube = np.full((len(uniques), len(seeds), len(uids)), np.nan)
    cube[codes[keep], seed_pos[keep], uid_pos[keep]] = frame["accuracy"].to_numpy()[keep]
    return list(uniques), cube


def configs_of(results: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration with its descriptive columns, seeds and problems."""
    grouped = results.groupby("config", sort=False)
    out = grouped[CONFIG_COLUMNS].first().reset_index(drop=True)
    out["seeds"] = grouped["seed"].nunique().to_numpy()
    out["seed_list"] = grouped["seed"].agg(lambda s: ",".join(map(str, sorted(set(s))))).to_numpy()
    out["problems"] = grouped["uid"].nunique().to_numpy()
    out["runs"] = grouped["run"].nunique().to_numpy()
    out["kind_rank"] = out["temp_kind"].map(KIND_RANK)
    out = out.sort_values(["setting", "kind_rank", "temp_value", "temperature"])
    return out.drop(columns="kind_rank").reset_index(drop=True)


def summary(results: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Mean accuracy and its interval per configuration x method x N x scope, with compute."""
    rows = []
    for setting, frame in results.groupby("setting", sort=True):
        for scope, value, part in scopes(frame):
            seedsets = part.groupby("config")["seed"].agg(lambda s: tuple(sorted(set(s))))
            for seeds, configs in seedsets.groupby(seedsets):
                sub = part[part["config"].isin(configs.index)]
                uids = sorted(sub["uid"].unique())
                keys, cube = _cube(sub, ["config", "method", "N"], list(seeds), uids)
                rng = rng_for(opts.seed, "summary", setting, scope, value, seeds)
                estimates = bootstrap(cube, opts.resamples, rng, opts.level)
                for (config, method, k), e in zip(keys, estimates):
                    rows.append(_estimate_row(config, method, k, scope, value, e))
    out = pd.DataFrame(rows)
    compute = _compute(results)
    out = out.merge(compute, on=["config", "N", "scope", "scope_value"], how="left")
    info = configs_of(results)[CONFIG_COLUMNS]
    return out.merge(info, on="config", how="left")[
        [*CONFIG_COLUMNS, "method", "N", "scope", "scope_value", *_ESTIMATE, *_COMPUTE]
    ]


_ESTIMATE = ["mean", "lo", "hi", "problems", "seeds"]
_COMPUTE = ["gen_tokens", "prm_tokens", "prm_steps", "gen_flops", "prm_flops", "flops"]


def _estimate_row(config: str, method: str, k: int, scope: str, value: str, e: Estimate) -> dict:
    return {
        "config": config,
        "method": method,
        "N": int(k),
        "scope": scope,
        "scope_value": value,
        **e.columns(),
    }


def _compute(results: pd.DataFrame) -> pd.DataFrame:
    """Mean compute per problem at each N (the same for every method)."""
    one = results[results["method"] == results["method"].iloc[0]]
    parts = []
    for scope, value, part in scopes(one):
        mean = part.groupby(["config", "N"])[_COMPUTE].mean().reset_index()
        mean["scope"], mean["scope_value"] = scope, value
        parts.append(mean)
    return pd.concat(parts, ignore_index=True)


def hot_and_cold(configs: pd.DataFrame, opts: Options) -> tuple[pd.Series, pd.Series] | None:
    """The hot and cold single-temperature configurations of one setting, or None."""
    singles = configs[configs["temp_kind"] == "single"].sort_values("temp_value")
    if len(singles) < 2:
        return None

    def pick(value: float | None, default: pd.Series) -> pd.Series | None:
        if value is None:
            return default
        match = singles[np.isclose(singles["temp_value"], value)]
        return match.iloc[0] if len(match) else None

    hot, cold = pick(opts.hot, singles.iloc[-1]), pick(opts.cold, singles.iloc[0])
    if hot is None or cold is None or hot["config"] == cold["config"]:
        return None
    return hot, cold


def paired(
    frame: pd.DataFrame,
    a: str,
    b: str,
    methods: Sequence[str],
    opts: Options,
    key: Sequence[object],
) -> list[tuple[str, int, Estimate, bool]]:
    """Paired bootstrap of accuracy(a) - accuracy(b) per method and N on one scope's rows.

    Pairs are (seed, problem) cells both configurations ran. When they share no seed, each
    problem's accuracy is first averaged over its seeds and pairs are problems only (the last
    element of each tuple says whether seeds were paired).
    """
    rows = frame[frame["method"].isin(methods) & frame["config"].isin([a, b])]
    xa, xb = rows[rows["config"] == a], rows[rows["config"] == b]
    common = sorted(set(xa["seed"]) & set(xb["seed"]))
    by_seed = bool(common)
    if not by_seed:
        xa, xb = (
            x.groupby(["method", "N", "uid"], as_index=False)["accuracy"].mean().assign(seed=0)
            for x in (xa, xb)
        )
        common = [0]
    uids = sorted(set(xa["uid"]) & set(xb["uid"]))
    keys_a, cube_a = _cube(xa, ["method", "N"], common, uids)
    keys_b, cube_b = _cube(xb, ["method", "N"], common, uids)
    position = {k: i for i, k in enumerate(keys_b)}
    shared = [k for k in keys_a if k in position]
    diff = np.empty((len(shared), len(common), len(uids)))
    for i, k in enumerate(shared):
        diff[i] = cube_a[keys_a.index(k)] - cube_b[position[k]]
    # keyed by what is compared, not by which table asks: the same pair gets the same resamples
    rng = rng_for(opts.seed, "paired", *key, a, b)
    estimates = bootstrap(diff, opts.resamples, rng, opts.level)
    return [(m, int(k), e, by_seed) for (m, k), e in zip(shared, estimates)]


def comparisons(results: pd.DataFrame, table: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Paired differences, one row per (kind, setting, a, b, method, N, scope):

    - `hot_vs_cold`: hot minus cold, every method;
    - `pair`: every pair of single temperatures (higher minus lower), headline method;
    - `mix_vs_best`: each mix or schedule minus the best single temperature of that scope and
      N (chosen on the point estimates), headline method.
    """
    configs = configs_of(results)
    rows = []
    for setting, frame in results.groupby("setting", sort=True):
        mine = configs[configs["setting"] == setting]
        singles = mine[mine["temp_kind"] == "single"].sort_values("temp_value")
        others = mine[mine["temp_kind"] != "single"]
        chosen = hot_and_cold(mine, opts)
        methods = sorted(frame["method"].unique())
        for scope, value, part in scopes(frame):
            key = (setting, scope, value)
            if chosen is not None:
                hot, cold = chosen
                for m, k, e, by_seed in paired(
                    part, hot["config"], cold["config"], methods, opts, key
                ):
                    rows.append(_cmp("hot_vs_cold", setting, hot, cold, m, k, scope, value, e))
                    rows[-1]["paired_seeds"] = by_seed
            for (_, low), (_, high) in itertools.combinations(singles.iterrows(), 2):
                for m, k, e, by_seed in paired(
                    part, high["config"], low["config"], [opts.method], opts, key
                ):
                    rows.append(_cmp("pair", setting, high, low, m, k, scope, value, e))
                    rows[-1]["paired_seeds"] = by_seed
            if len(singles) == 0 or len(others) == 0:
                continue
            best = _best_single(table, setting, scope, value, opts.method)
            for _, mix in others.iterrows():
                for best_config, ns in _by_best(best):
                    ref = singles[singles["config"] == best_config].iloc[0]
                    for m, k, e, by_seed in paired(
                        part[part["N"].isin(ns)],
                        mix["config"],
                        best_config,
                        [opts.method],
                        opts,
                        key,
                    ):
                        rows.append(_cmp("mix_vs_best", setting, mix, ref, m, k, scope, value, e))
                        rows[-1]["paired_seeds"] = by_seed
    columns = [
        "kind",
        "setting",
        "a",
        "b",
        "a_temperature",
        "b_temperature",
        "method",
        "N",
        "scope",
        "scope_value",
        *_ESTIMATE,
        "significant",
        "paired_seeds",
    ]
    return in_scope_order(pd.DataFrame(rows, columns=columns), ["kind", "setting", "a", "N"])


def _by_best(best: pd.DataFrame) -> Iterator[tuple[str, list[int]]]:
    for config, part in best.groupby("config", sort=True):
        yield config, sorted(part["N"])


def _best_single(
    table: pd.DataFrame, setting: str, scope: str, value: str, method: str
) -> pd.DataFrame:
    """The best single-temperature configuration at each N (first of ties by temperature)."""
    rows = table[
        (table["setting"] == setting)
        & (table["scope"] == scope)
        & (table["scope_value"] == value)
        & (table["method"] == method)
        & (table["temp_kind"] == "single")
    ].sort_values(["N", "mean", "temp_value"], ascending=[True, False, True])
    return rows.groupby("N", as_index=False).first()[["N", "config", "mean"]]


def _cmp(
    kind: str,
    setting: str,
    a: pd.Series,
    b: pd.Series,
    method: str,
    k: int,
    scope: str,
    value: str,
    e: Estimate,
) -> dict:
    return {
        "kind": kind,
        "setting": setting,
        "a": a["config"],
        "b": b["config"],
        "a_temperature": a["temperature"],
        "b_temperature": b["temperature"],
        "method": method,
        "N": k,
        "scope": scope,
        "scope_value": value,
        **e.columns(),
        "significant": e.significant,
    }


def best_temperatures(table: pd.DataFrame, cmp: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """The best single temperature per setting x scope x N (headline method): the leaders
    (ties within 1e-9 all listed) and whether the leader beats every other single temperature
    with an interval excluding zero."""
    rows = []
    singles = table[(table["temp_kind"] == "single") & (table["method"] == opts.method)]
    pairs = cmp[cmp["kind"] == "pair"]
    group = ["setting", "scope", "scope_value", "N"]
    for (setting, scope, value, k), part in singles.groupby(group, sort=True):
        if part["temperature"].nunique() < 2:
            continue
        top = part["mean"].max()
        leaders = part[part["mean"] >= top - 1e-9].sort_values("temp_value")
        leader = leaders.iloc[0]
        clear = len(leaders) == 1
        if clear:
            mine = pairs[
                (pairs["setting"] == setting)
                & (pairs["scope"] == scope)
                & (pairs["scope_value"] == value)
                & (pairs["N"] == k)
                & ((pairs["a"] == leader["config"]) | (pairs["b"] == leader["config"]))
            ]
            sign = np.where(mine["a"] == leader["config"], 1.0, -1.0)
            lows = np.minimum(sign * mine["lo"], sign * mine["hi"])
            clear = len(mine) == len(part) - 1 and bool((lows > 0).all())
        runner_up = part[part["mean"] < top - 1e-9]["mean"].max()
        rows.append(
            {
                "setting": setting,
                "scope": scope,
                "scope_value": value,
                "N": int(k),
                "best": "=".join(leaders["temperature"]),
                "best_value": float(leader["temp_value"]),
                "mean": float(top),
                "margin": float(top - runner_up) if not math.isnan(runner_up) else 0.0,
                "significant": clear,
            }
        )
    return in_scope_order(
        pd.DataFrame(
            rows,
            columns=[
                "setting",
                "scope",
                "scope_value",
                "N",
                "best",
                "best_value",
                "mean",
                "margin",
                "significant",
            ],
        ),
        ["setting", "N"],
    )


def mix_within_point(table: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """For each mix or schedule, scope and N: is it within `opts.point` of the best single
    temperature (headline method, point estimates)?"""
    rows = []
    method = table[table["method"] == opts.method]
    for (setting, scope, value, k), part in method.groupby(
        ["setting", "scope", "scope_value", "N"], sort=True
    ):
        singles = part[part["temp_kind"] == "single"]
        if singles.empty:
            continue
        best = singles.sort_values(["mean", "temp_value"], ascending=[False, True]).iloc[0]
        for _, mix in part[part["temp_kind"] != "single"].iterrows():
            gap = float(mix["mean"] - best["mean"])
            rows.append(
                {
                    "setting": setting,
                    "config": mix["config"],
                    "temperature": mix["temperature"],
                    "scope": scope,
                    "scope_value": value,
                    "N": int(k),
                    "mix": float(mix["mean"]),
                    "best_single": best["temperature"],
                    "best_single_mean": float(best["mean"]),
                    "difference": gap,
                    "within": gap >= -opts.point - 1e-12,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "setting",
            "config",
            "temperature",
            "scope",
            "scope_value",
            "N",
            "mix",
            "best_single",
            "best_single_mean",
            "difference",
            "within",
        ],
    )


def oracle(results: pd.DataFrame, opts: Options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-problem oracle temperature (headline method): the single temperature that does
    best on each problem (seeds averaged first).

    Returns (gaps, shares). `gaps`: per setting x N x fixed temperature, its accuracy, the
    oracle's accuracy and the gap with a bootstrap interval over problems. `shares`: per setting
    x N x level (and overall) x temperature, the share of problems on which that temperature is
    an oracle choice, among problems where the temperatures differ (ties split evenly).
    The oracle picks with hindsight on the same samples, so its accuracy is optimistic: noise
    alone makes the per-problem maximum exceed every fixed choice.
    """
    gaps, shares = [], []
    rows = results[(results["temp_kind"] == "single") & (results["method"] == opts.method)]
    for setting, frame in rows.groupby("setting", sort=True):
        if frame["config"].nunique() < 2:
            continue
        temps = frame.groupby("temperature")["temp_value"].first().sort_values()
        per_problem = frame.groupby(["N", "temperature", "uid"])["accuracy"].mean()
        levels = frame.groupby("uid")["level"].first()
        for k in sorted(frame["N"].unique()):
            grid = per_problem.loc[k].unstack("temperature")[list(temps.index)].dropna()
            if grid.empty:
                continue
            values = grid.to_numpy()
            best = values.max(axis=1, keepdims=True)
            gap_cube = (best - values).T[:, None, :]  # (temperatures, 1 seed axis, problems)
            rng = rng_for(opts.seed, "oracle", setting, k)
            for (t, v), e, acc in zip(
                temps.items(),
                bootstrap(gap_cube, opts.resamples, rng, opts.level),
                values.mean(axis=0),
            ):
                gaps.append(
                    {
                        "setting": setting,
                        "N": int(k),
                        "temperature": t,
                        "temp_value": float(v),
                        "accuracy": float(acc),
                        "oracle": float(best.mean()),
                        "gap": e.mean,
                        "gap_lo": e.lo,
                        "gap_hi": e.hi,
                        "problems": e.problems,
                    }
                )
            is_best = np.isclose(values, best)
            matters = ~is_best.all(axis=1)
            weight = is_best / is_best.sum(axis=1, keepdims=True)
            problem_levels = levels.reindex(grid.index)
            groups = [("overall", "", np.ones(len(grid), dtype=bool))]
            for level in sorted(problem_levels.dropna().unique()):
                groups.append(("level", str(level), (problem_levels == level).to_numpy()))
            for scope, value, mask in groups:
                use = mask & matters
                for i, t in enumerate(temps.index):
                    shares.append(
                        {
                            "setting": setting,
                            "N": int(k),
                            "scope": scope,
                            "scope_value": value,
                            "temperature": t,
                            "share": float(weight[use, i].sum() / use.sum())
                            if use.any()
                            else math.nan,
                            "problems": int(mask.sum()),
                            "indifferent": int((mask & ~matters).sum()),
                        }
                    )
    return pd.DataFrame(gaps), pd.DataFrame(shares)


def diversity(problems: pd.DataFrame, table: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Per configuration: why accuracy is what it is. Means over problems and seeds of distinct
    final answers, answered share, pass@1, PRM score spread (standard deviation of solution
    scores within a problem), tokens per completion, finished share; next to coverage (pass@n)
    and headline accuracy at N = n."""
    stats = (
        problems.groupby("config")
        .agg(
            distinct_answers=("distinct_answers", "mean"),
            answered=("answered", "mean"),
            pass_at_1=("correct_share", "mean"),
            score_std=("score_std", "mean"),
            mean_tokens=("mean_tokens", "mean"),
            finished_share=("finished_share", "mean"),
        )
        .reset_index()
    )
    overall = table[(table["scope"] == "overall") & (table["N"] == table["n"])]
    coverage = overall[overall["method"] == "pass"][["config", "mean"]].rename(
        columns={"mean": "coverage"}
    )
    accuracy = overall[overall["method"] == opts.method][["config", "mean"]].rename(
        columns={"mean": "accuracy"}
    )
    info = configs_of(problems.assign(method="-", N=0, accuracy=0.0))[
        ["setting", "config", "temperature", "temp_kind", "temp_value", "n"]
    ]
    return (
        info.merge(stats, on="config")
        .merge(coverage, on="config", how="left")
        .merge(accuracy, on="config", how="left")
    )


EQUAL_AXES = {"gen_tokens": "tokens", "flops": "flops"}
"""Compute columns `equal_compute` can equalise, and the name of its budget column for each."""


def equal_compute(
    table: pd.DataFrame, opts: Options, column: str = "gen_tokens", max_rows: int = 12
) -> pd.DataFrame:
    """Headline accuracy (overall) of every configuration of a family at the same compute per
    problem (`column`: generated tokens, or FLOPs of generator and PRM together): linear
    interpolation in log2(compute) between a configuration's own budgets, never beyond them
    (NaN there). Budgets are powers of two spanning the family."""
    budget = EQUAL_AXES[column]
    rows = []
    overall = table[
        (table["scope"] == "overall")
        & (table["method"] == opts.method)
        & table[column].notna()
        & (table[column] > 0)
    ]
    for family, frame in overall.groupby("family", sort=True):
        low, high = frame[column].min(), frame[column].max()
        grid = 2.0 ** np.arange(math.ceil(math.log2(low)), math.floor(math.log2(high)) + 1)
        if len(grid) > max_rows:
            grid = grid[np.linspace(0, len(grid) - 1, max_rows).round().astype(int)]
        for config, line in frame.groupby("config", sort=False):
            line = line.sort_values(column)
            x, y = np.log2(line[column].to_numpy()), line["mean"].to_numpy()
            for point in grid:
                inside = x.min() - 1e-9 <= math.log2(point) <= x.max() + 1e-9
                rows.append(
                    {
                        "family": family,
                        "config": config,
                        budget: float(point),
                        "accuracy": float(np.interp(math.log2(point), x, y))
                        if inside
                        else math.nan,
                    }
                )
    return pd.DataFrame(rows, columns=["family", "config", budget, "accuracy"])


def prm_comparisons(results: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """PRMs compared on the same completions: for every two configurations holding the same
    samples (a run and its re-scorings by other PRMs, `samples` in common), the paired
    difference a − b per method and N, overall and per level, over exactly the (seed, problem)
    cells whose completions both scored. `a` is the re-scored one (when one of the two is the
    run that generated the samples, it is `b`)."""
    runs = results.drop_duplicates(["config", "samples"])[["config", "samples"]]
    by_samples = runs.groupby("samples")["config"].agg(lambda c: sorted(set(c)))
    pairs: dict[tuple[str, str], set[str]] = {}
    for samples, configs in by_samples.items():
        for x, y in itertools.combinations(configs, 2):
            pairs.setdefault((x, y), set()).add(str(samples))
    info = configs_of(results).set_index("config")
    rows = []
    for (x, y), shared in sorted(pairs.items()):
        # the source (no source_prm) is b; otherwise in config order
        source_first = pd.isna(info.loc[x, "source_prm"]) and not pd.isna(info.loc[y, "source_prm"])
        a, b = (y, x) if source_first else (x, y)
        part = results[results["samples"].isin(shared) & results["config"].isin([a, b])]
        for scope, value, rows_of_scope in scopes(part):
            if scope == "subject":
                continue
            key = ("prm_vs_prm", scope, value)
            for m, k, e, _ in paired(rows_of_scope, a, b, METHODS, opts, key):
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "a_scored_by": info.loc[a, "scored_by"],
                        "b_scored_by": info.loc[b, "scored_by"],
                        "guided_by": info.loc[a, "guided_by"],
                        "approach": info.loc[a, "approach"],
                        "temperature": info.loc[a, "temperature"],
                        "n": info.loc[a, "n"],
                        "method": m,
                        "N": k,
                        "scope": scope,
                        "scope_value": value,
                        **e.columns(),
                        "significant": e.significant,
                    }
                )
    columns = [
        "a",
        "b",
        "a_scored_by",
        "b_scored_by",
        "guided_by",
        "approach",
        "temperature",
        "n",
        "method",
        "N",
        "scope",
        "scope_value",
        *_ESTIMATE,
        "significant",
    ]
    return in_scope_order(pd.DataFrame(rows, columns=columns), ["a", "b", "method", "N"])


def selection_summary(selection: pd.DataFrame, opts: Options) -> pd.DataFrame:
    """Soft Best-of-N's mean accuracy and interval per configuration x tau x N, overall and
    per level (the same two-way bootstrap as `summary`)."""
    columns = ["setting", "config", "temperature", "tau", "N", "scope", "scope_value", *_ESTIMATE]
    if selection.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for setting, frame in selection.groupby("setting", sort=True):
        for scope, value, part in scopes(frame):
            if scope == "subject":
                continue
            seeds = sorted(part["seed"].unique())
            uids = sorted(part["uid"].unique())
            keys, cube = _cube(part, ["config", "tau", "N"], seeds, uids)
            rng = rng_for(opts.seed, "selection", setting, scope, value)
            for (config, tau, k), e in zip(keys, bootstrap(cube, opts.resamples, rng, opts.level)):
                rows.append(
                    {
                        "setting": setting,
                        "config": config,
                        "temperature": config.split(":", 1)[1],
                        "tau": float(tau),
                        "N": int(k),
                        "scope": scope,
                        "scope_value": value,
                        **e.columns(),
                    }
                )
    return in_scope_order(pd.DataFrame(rows, columns=columns), ["setting", "config", "tau", "N"])
