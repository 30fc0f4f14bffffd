"""The analyzer on synthetic run directories whose outcomes are known by construction.

The runs are real run directories written by hotncold's own run loop (`execute`) on a scripted
engine. Per problem (4 per level, index j within its level), every sample at a temperature is
either right or wrong:

| level | cold (0.4) right on | hot (1.2) right on | hot - cold per problem |
|-------|---------------------|--------------------|------------------------|
| 1     | all                 | none               | -1 -1 -1 -1            |
| 2     | all                 | all                | 0 0 0 0                |
| 3     | j = 1, 2            | j = 0, 1           | +1 0 -1 0              |
| 4     | j = 0, 1            | all                | 0 0 +1 +1              |
| 5     | none                | all                | +1 +1 +1 +1            |

A right sample states a true equation (PRM score 1) and the answer; a cold wrong one a false
equation (0) and always the same wrong answer; a hot wrong one a different wrong answer per
sample, alternately with a false equation (0) and with nothing checkable (0.5). The mix
[0.4, 1.2] samples each temperature by the same rules.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import struct

import numpy as np
import pandas as pd
import pytest
import yaml
from fakes import ScriptedEngine, problem_of

import hotncold.engine.vllm_engine
from hotncold.analyze import AnalysisError, Options, analyze, collect
from hotncold.analyze.__main__ import main
from hotncold.analyze.collect import describe_temperature
from hotncold.analyze.render import verdict
from hotncold.analyze.stats import bootstrap, rng_for
from hotncold.config import ApproachConfig, Config, DatasetConfig, MetricsConfig, TemperatureConfig
from hotncold.data import load_problems
from hotncold.data.arithmetic import generate
from hotncold.evaluation.grading import Grader
from hotncold.evaluation.metrics import metrics_from_records
from hotncold.experiment.run import execute, grade_problem
from hotncold.experiment.rundir import RunDir, append_jsonl, write_json
from hotncold.search.base import Completion

COLD, HOT = 0.4, 1.2
RIGHT = {
    COLD: {1: {0, 1, 2, 3}, 2: {0, 1, 2, 3}, 3: {1, 2}, 4: {0, 1}, 5: set()},
    HOT: {1: set(), 2: {0, 1, 2, 3}, 3: {0, 1}, 4: {0, 1, 2, 3}, 5: {0, 1, 2, 3}},
}
ROWS = {r["problem"]: r for r in generate(4)}


def right(t: float, uid: str, level: int) -> bool:
    return int(uid.rsplit("/", 1)[1]) in RIGHT[t][level]


def solver(request, i):
    row = ROWS[problem_of(request.prompt)]
    a = int(row["answer"])
    if right(request.temperature, row["unique_id"], row["level"]):
        return f"{a} + 0 = {a}, so the answer is \\boxed{{{a}}}."
    if request.temperature == COLD:
        return f"1 + 1 = 3, so the answer is \\boxed{{{a + 1}}}."
    if i % 2 == 0:
        return f"1 + 1 = 3, so the answer is \\boxed{{{a + 10 + i}}}."
    return f"So the answer is \\boxed{{{a + 10 + i}}}."


def config(out, values, seed, **kw) -> Config:
    return Config(
        out_dir=str(out),
        n=4,
        seed=seed,
        batch_size=5,
        dataset=DatasetConfig(per_level=4),
        temperature=TemperatureConfig(values=values),
        metrics=MetricsConfig(num_subsets=2048),
        **kw,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:
        engine = ScriptedEngine(solver)
        mp.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: engine)
        for name, values in (("cold", [COLD]), ("hot", [HOT]), ("mix", [COLD, HOT])):
            for seed in (0, 1):
                execute(config(root / "sweep" / f"{name}{seed}", values, seed))
        # a run interrupted after its first batch: never part of the analysis
        calls = {"n": 0}
        original = engine.generate

        def dies(requests):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return original(requests)

        engine.generate = dies
        with pytest.raises(KeyboardInterrupt):
            execute(config(root / "sweep" / "nested" / "broken", [COLD], 5))
    return root


@pytest.fixture(scope="module")
def analysis(study):
    return analyze([study / "sweep"], study / "report", Options(resamples=2000))


def level_of(uid: str) -> int:
    return int(uid.split("/")[1].removeprefix("level"))


def test_collect_reads_finished_runs_and_skips_unfinished_ones(study, caplog):
    with caplog.at_level(logging.WARNING, logger="hotncold.analyze"):
        data = collect([study / "sweep"])
    assert len(data.runs) == 6
    assert [s.path.endswith("broken") for s in data.skipped] == [True]
    assert "interrupted" in data.skipped[0].reason and "5/20" in data.skipped[0].reason
    assert any("skipping" in r.message and "broken" in r.message for r in caplog.records)
    # one row per run x problem x N x method: 6 runs x 20 problems x N in 1, 2, 4 x 4 methods
    results = data.results
    assert len(results) == 6 * 20 * 3 * 4
    assert not results.duplicated(["run", "uid", "N", "method"]).any()
    assert set(results["temperature"]) == {"T0.4", "T1.2", "T0.4-1.2"}
    assert results.groupby("temperature")["temp_kind"].first().to_dict() == {
        "T0.4": "single",
        "T1.2": "single",
        "T0.4-1.2": "mix",
    }
    assert results["setting"].nunique() == 1 and results["config"].nunique() == 3
    assert results["level"].dtype == "Int64" and set(results["level"]) == {1, 2, 3, 4, 5}
    # single temperatures: every method, at every N, is 1 on right problems and 0 on wrong ones
    for t in (COLD, HOT):
        rows = results[results["temp_value"] == t]
        expected = [float(right(t, u, level_of(u))) for u in rows["uid"]]
        assert rows["accuracy"].tolist() == expected
    # the mix at N=n: weighted and naive pick a right sample whenever there is one
    mix = results[(results["temp_kind"] == "mix") & (results["N"] == 4)]
    for _, r in mix[mix["method"].isin(["naive", "weighted", "pass"])].iterrows():
        level = level_of(r["uid"])
        assert r["accuracy"] == float(right(COLD, r["uid"], level) or right(HOT, r["uid"], level))


def test_problem_table_diversity_numbers_by_hand(study):
    problems = collect([study / "sweep"]).problems
    assert len(problems) == 6 * 20
    means = problems.groupby("temperature")[["distinct_answers", "score_std", "correct_share"]]
    means = means.mean()
    # cold: one answer per problem (right, or always the same wrong one); all scores equal
    assert means.loc["T0.4"].tolist() == pytest.approx([1.0, 0.0, 0.6])
    # hot: 6 wrong problems with 4 distinct answers and scores (0, .5, 0, .5): std .25
    assert means.loc["T1.2"].tolist() == pytest.approx([(6 * 4 + 14) / 20, 6 * 0.25 / 20, 0.7])
    # mix (cold, hot, cold, hot): both right -> 1 answer; cold only -> right + 2 hot wrong;
    # hot only -> right + the cold wrong one; neither -> 3 wrong answers
    assert means.loc["T0.4-1.2", "distinct_answers"] == pytest.approx(
        (7 * 1 + 5 * 3 + 7 * 2 + 1 * 3) / 20
    )
    spread = (5 * np.std([1, 0, 1, 0.5]) + 7 * np.std([0, 1, 0, 1]) + np.std([0, 0, 0, 0.5])) / 20
    assert means.loc["T0.4-1.2", "score_std"] == pytest.approx(spread)
    assert (problems["answered"] == 1.0).all() and (problems["completions"] == 4).all()
    # ScriptedEngine counts words as tokens: 10 for every text but the hot "So the answer..." (5)
    hot = problems[problems["temperature"] == "T1.2"]
    wrong = [not right(HOT, u, level_of(u)) for u in hot["uid"]]
    assert hot["mean_tokens"].tolist() == [7.5 if w else 10.0 for w in wrong]
    assert hot["gen_tokens"].tolist() == [4 * (7.5 if w else 10.0) for w in wrong]


def test_accuracy_summary_means_and_intervals(analysis):
    s = analysis.summary
    overall = s[(s["scope"] == "overall") & (s["method"] == "weighted")].set_index(
        ["temperature", "N"]
    )
    assert overall.loc[("T0.4", 4), "mean"] == pytest.approx(0.6)
    assert overall.loc[("T1.2", 4), "mean"] == pytest.approx(0.7)
    assert overall.loc[("T0.4-1.2", 4), "mean"] == pytest.approx(0.95)
    for _, r in overall.iterrows():
        assert r["lo"] <= r["mean"] <= r["hi"] and r["problems"] == 20 and r["seeds"] == 2
    # cold at N=4: 12 of 20 right; the bootstrap interval of a 60% mean over 20 problems is
    # about +-22 points wide (binomial: 1.96 * sqrt(.6 * .4 / 20) = .215); the bootstrap's
    # percentiles of 20 problems fall on multiples of 1/20, so the bounds can be 0.35 or 0.85
    cold = overall.loc[("T0.4", 4)]
    assert 0.35 <= cold["lo"] <= 0.45 and 0.75 <= cold["hi"] <= 0.85
    level = s[(s["scope"] == "level") & (s["method"] == "majority") & (s["N"] == 2)]
    level = level.set_index(["temperature", "scope_value"])
    # a level where every problem is right has a degenerate interval at 100
    assert level.loc[("T0.4", "1"), ["mean", "lo", "hi"]].tolist() == [1.0, 1.0, 1.0]
    assert level.loc[("T1.2", "1"), ["mean", "lo", "hi"]].tolist() == [0.0, 0.0, 0.0]
    assert set(s["scope"]) == {"overall", "level", "subject"}
    # compute at N: N x mean tokens per completion (cold: 10 tokens each)
    cold_tokens = s[(s["temperature"] == "T0.4") & (s["scope"] == "overall")]
    assert dict(zip(cold_tokens["N"], cold_tokens["gen_tokens"])) == {1: 10, 2: 20, 4: 40}


def hc(analysis, scope, value="", method="weighted", n=4):
    c = analysis.comparisons
    row = c[
        (c["kind"] == "hot_vs_cold")
        & (c["scope"] == scope)
        & (c["scope_value"] == value)
        & (c["method"] == method)
        & (c["N"] == n)
    ]
    assert len(row) == 1
    return row.iloc[0]


def test_hot_vs_cold_paired_differences_and_verdicts(analysis):
    # the true differences (hot - cold) per level: -1, 0, 0, +0.5, +1; overall +0.1
    for value, true, significant in (
        ("1", -1.0, True),
        ("2", 0.0, False),
        ("3", 0.0, False),
        ("4", 0.5, False),  # 4 problems: a resample of the two ties alone has p = 1/16
        ("5", 1.0, True),
    ):
        row = hc(analysis, "level", value)
        assert row["mean"] == pytest.approx(true)
        assert row["lo"] <= true <= row["hi"]
        assert bool(row["significant"]) is significant
        assert (row["problems"], row["seeds"], row["paired_seeds"]) == (4, 2, True)
    assert hc(analysis, "level", "4")[["lo", "hi"]].tolist() == [0.0, 1.0]
    overall = hc(analysis, "overall")
    assert overall["mean"] == pytest.approx(0.1) and overall["lo"] < 0 < overall["hi"]
    assert not overall["significant"]
    # every method is compared; with all-or-nothing problems they agree
    assert hc(analysis, "level", "5", method="majority", n=1)["mean"] == pytest.approx(1.0)
    assert verdict(hc(analysis, "level", "5"), HOT, COLD, 0.95) == (
        "level 5: hot (1.2) beats cold (0.4) by +100.0 points at N=4, 95% CI [100.0, 100.0] "
        "(4 problems × 2 seeds, weighted)"
    )
    assert verdict(hc(analysis, "level", "1"), HOT, COLD, 0.95).startswith(
        "level 1: cold (0.4) beats hot (1.2) by +100.0 points at N=4, 95% CI [100.0, 100.0]"
    )
    assert verdict(overall, HOT, COLD, 0.95).startswith(
        "overall: no significant difference between hot (1.2) and cold (0.4) at N=4 "
        "(hot − cold +10.0 points, 95% CI ["
    )


def test_paired_interval_is_narrower_than_unpaired_noise():
    # two configurations that differ by exactly +0.1 on every problem of varying difficulty
    base = np.linspace(0.0, 0.8, 40)
    a, b = (base + 0.1)[None, None, :], base[None, None, :]
    diff = bootstrap(a - b, 1000, rng_for(0, "x"))[0]
    assert diff.mean == pytest.approx(0.1) and diff.hi - diff.lo < 1e-9 and diff.significant
    alone = bootstrap(a, 1000, rng_for(0, "x"))[0]
    assert alone.hi - alone.lo > 0.1  # problem difficulty dominates an unpaired interval


def test_bootstrap_resamples_seeds_and_ignores_missing_cells():
    # seed 0 solves everything, seed 1 nothing: only seed resampling can see that spread
    cube = np.array([[[1.0] * 6, [0.0] * 6]])
    e = bootstrap(cube, 4000, rng_for(0, "seeds"))[0]
    assert e.mean == 0.5 and (e.lo, e.hi) == (0.0, 1.0) and (e.problems, e.seeds) == (6, 2)
    with_gap = np.array([[[1.0, np.nan, 0.0, 1.0]]])
    e = bootstrap(with_gap, 1000, rng_for(0, "gap"))[0]
    assert e.mean == pytest.approx(2 / 3) and e.problems == 3 and 0 <= e.lo <= e.hi <= 1
    # the same key gives the same interval, another key another resample
    again = bootstrap(with_gap, 1000, rng_for(0, "gap"))[0]
    assert again == e


def test_best_temperature_per_scope(analysis):
    best = analysis.best.set_index(["scope", "scope_value", "N"])
    assert best.loc[("level", "1", 4), ["best", "significant"]].tolist() == ["T0.4", True]
    assert best.loc[("level", "2", 4), "best"] == "T0.4=T1.2"
    assert best.loc[("level", "3", 4), "best"] == "T0.4=T1.2"
    assert best.loc[("level", "4", 4), ["best", "significant"]].tolist() == ["T1.2", False]
    assert best.loc[("level", "5", 4), ["best", "significant"]].tolist() == ["T1.2", True]
    assert best.loc[("overall", "", 4), ["best", "mean", "significant"]].tolist() == [
        "T1.2",
        pytest.approx(0.7),
        False,
    ]
    assert best.loc[("overall", "", 4), "margin"] == pytest.approx(0.1)
    assert (best.reset_index()["scope"] == "subject").any()


def test_mix_within_a_point_of_the_best_single_temperature(analysis):
    w = analysis.within.set_index(["scope", "scope_value", "N"])
    # N=n: the mix is right wherever either temperature is, so never below the best single
    at_n = w.xs(4, level="N")
    assert at_n["within"].all() and len(at_n) == 1 + 5 + at_n.loc["subject"].shape[0]
    assert w.loc[("overall", "", 4), "difference"] == pytest.approx(0.95 - 0.7)
    # N=1: the mix averages cold and hot, (0.6 + 0.7) / 2 = 0.65 < 0.7 - 0.01
    assert w.loc[("overall", "", 1), "difference"] == pytest.approx(-0.05, abs=0.02)
    assert not w.loc[("overall", "", 1), "within"]
    assert not w.loc[("level", "1", 1), "within"]  # 0.5 against cold's 1.0
    assert w.loc[("level", "2", 1), "within"]  # everything right at level 2
    cmp = analysis.comparisons
    mix = cmp[(cmp["kind"] == "mix_vs_best") & (cmp["scope"] == "overall") & (cmp["N"] == 4)]
    assert mix.iloc[0]["b_temperature"] == "T1.2" and mix.iloc[0]["mean"] == pytest.approx(0.25)
    assert mix.iloc[0]["significant"]


def test_oracle_temperature_and_the_gap_of_a_fixed_choice(analysis):
    g = analysis.oracle_gaps.set_index(["N", "temperature"])
    # the oracle is right wherever any temperature is: 19 of 20 (level 3, j = 3 is lost)
    assert g.loc[(4, "T0.4"), "oracle"] == pytest.approx(0.95)
    assert g.loc[(4, "T0.4"), "gap"] == pytest.approx(0.35)
    assert g.loc[(4, "T1.2"), "gap"] == pytest.approx(0.25)
    assert g.loc[(4, "T1.2"), "gap_lo"] <= 0.25 <= g.loc[(4, "T1.2"), "gap_hi"]
    shares = analysis.oracle_shares
    overall = shares[(shares["scope"] == "overall") & (shares["N"] == 4)].set_index("temperature")
    # 12 problems where the temperatures differ: cold wins 5 (level 1, level 3 j=2), hot 7
    assert overall.loc["T0.4", "share"] == pytest.approx(5 / 12)
    assert overall.loc["T1.2", "share"] == pytest.approx(7 / 12)
    assert overall.loc["T0.4", "indifferent"] == 8
    level2 = shares[(shares["scope_value"] == "2") & (shares["N"] == 4)]
    assert level2["share"].isna().all()  # nothing to choose at level 2


def test_diversity_table_next_to_accuracy(analysis):
    d = analysis.diversity.set_index("temperature")
    assert d.loc["T0.4", ["distinct_answers", "coverage", "accuracy"]].tolist() == pytest.approx(
        [1.0, 0.6, 0.6]
    )
    assert d.loc["T1.2", ["distinct_answers", "coverage", "pass_at_1"]].tolist() == pytest.approx(
        [1.9, 0.7, 0.7]
    )
    assert d.loc["T0.4-1.2", "coverage"] == pytest.approx(0.95)


def test_equal_compute_interpolates_within_each_configuration(analysis):
    eq = analysis.equal_compute
    # token budgets are the powers of two inside the family's range: hot at N=1 spends 9.25
    # tokens per problem (6 problems at 7.5, 14 at 10), cold at N=4 40
    assert set(eq["tokens"]) == {16.0, 32.0}
    by = eq.pivot(index="tokens", columns="config", values="accuracy")
    by.columns = [c.split(":")[1] for c in by.columns]
    assert by["T0.4"].tolist() == pytest.approx([0.6, 0.6])  # flat from N=1 to N=4
    assert by["T1.2"].tolist() == pytest.approx([0.7, 0.7])
    s = analysis.summary
    mix = s[(s["temperature"] == "T0.4-1.2") & (s["scope"] == "overall")]
    mix = mix[mix["method"] == "weighted"].set_index("N")
    x = np.log2(mix["gen_tokens"].to_numpy())
    expected = np.interp([4.0, 5.0], x, mix["mean"].to_numpy())
    assert by["T0.4-1.2"].tolist() == pytest.approx(expected.tolist())
    assert mix.loc[1, "mean"] < by.loc[16.0, "T0.4-1.2"] < mix.loc[2, "mean"]


def test_flops_columns_and_accuracy_at_equal_flops(analysis, study):
    # the scripted engine's runs: the equation checker is model-free, so FLOPs are the
    # generator's; Best-of-N at N costs N/n of each problem's recorded FLOPs
    records = {}
    for path in (study / "sweep").glob("*[01]"):
        for line in (path / "completions.jsonl").open():
            r = json.loads(line)
            records.setdefault(path.name[:-1], []).append(r["compute"]["flops"])
    s = analysis.summary
    overall = s[(s["scope"] == "overall") & (s["method"] == "weighted")]
    for name, temperature in (("cold", "T0.4"), ("hot", "T1.2"), ("mix", "T0.4-1.2")):
        rows = overall[overall["temperature"] == temperature].set_index("N")
        per_problem = np.mean(records[name])  # both seeds' problems
        for k in (1, 2, 4):
            assert rows.loc[k, "flops"] == pytest.approx(per_problem * k / 4)
        assert (rows["prm_flops"] == 0).all()
        assert rows["flops"].tolist() == pytest.approx(rows["gen_flops"].tolist())
    eq = analysis.equal_flops
    assert list(eq.columns) == ["family", "config", "flops", "accuracy"]
    low, high = overall["flops"].min(), overall["flops"].max()
    assert sorted(set(eq["flops"])) == [
        2.0**e for e in range(math.ceil(math.log2(low)), math.floor(math.log2(high)) + 1)
    ]
    mix = overall[overall["temperature"] == "T0.4-1.2"].sort_values("flops")
    by = eq.pivot(index="flops", columns="config", values="accuracy")
    by.columns = [c.split(":")[1] for c in by.columns]
    inside = [f for f in by.index if mix["flops"].min() <= f <= mix["flops"].max()]
    expected = np.interp(np.log2(inside), np.log2(mix["flops"]), mix["mean"])
    assert by.loc[inside, "T0.4-1.2"].tolist() == pytest.approx(expected.tolist())
    text = (study / "report" / "report.md").read_text()
    assert "`weighted` accuracy @ FLOPs (generator + PRM) per problem:" in text
    assert "Equal compute: accuracy at the same FLOPs per problem" in text
    assert (study / "report" / "equal_flops.csv").is_file()


def png_ok(path) -> bool:
    head = path.read_bytes()[:24]
    width, height = struct.unpack(">II", head[16:24])
    return head[:8] == b"\x89PNG\r\n\x1a\n" and width > 100 and height > 100


def test_report_files_and_figures(analysis, study):
    out = study / "report"
    text = (out / "report.md").read_text()
    for name in ("results.parquet", "results.csv", "problems.parquet", "summary.csv"):
        assert (out / name).is_file()
    assert len(pd.read_parquet(out / "results.parquet")) == len(analysis.collection.results)
    figures = sorted((out / "figures").glob("*.png"))
    kinds = {f.name.split("_")[0] for f in figures}
    assert kinds == {"accuracy", "hot", "level", "oracle", "diversity", "compute"}
    for f in figures:
        assert png_ok(f), f
        assert f"figures/{f.name}" in text
    assert "level 5: hot (1.2) beats cold (0.4) by +100.0 points at N=4" in text
    assert "level 3: no significant difference between hot (1.2) and cold (0.4) at N=4" in text
    assert "broken" in text and "interrupted" in text  # the skipped run is listed
    assert "within 1 point in" in text


def test_cli_writes_the_report_and_fails_in_one_line(study, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main([str(study / "sweep"), "--out", str(out), "--bootstrap", "200", "--method", "pass"])
    assert code == 0 and (out / "report.md").is_file()
    assert "`pass`" in (out / "report.md").read_text()
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hotncold.analyze: error:") and "\n" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AnalysisError, match="no finished runs"):
        collect([empty])
    assert main([str(study / "sweep"), "--bootstrap", "0", "--out", str(out)]) == 2


def test_cli_prints_the_verdict_on_one_screen(study, tmp_path, capsys):
    """Accuracy per temperature at every N with intervals, hot - cold, the answer overall and
    per level, and where the report is. By construction (module docstring) cold solves 12 of
    the 20 problems and hot 14, whatever N: hot - cold is +10 points overall, -100 at level 1
    and +100 at level 5 (no spread: intervals are points)."""
    out = tmp_path / "cli"
    assert main([str(study / "sweep"), "--out", str(out), "--bootstrap", "500"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert len(lines) < 40 and max(len(line) for line in lines) <= 100
    start = next(i for i, line in enumerate(lines) if line.startswith("best_of_n n=4 · "))
    assert lines[start].endswith(": 20 problems x 2 seeds")
    assert lines[start + 1] == "weighted accuracy (%) with 95% intervals:"
    assert lines[start + 2].split() == ["N=1", "N=2", "N=4"]
    rows = {re.split(r" \(|\s{2,}", line)[0]: line for line in lines[start + 3 : start + 7]}
    assert set(rows) == {"T0.4", "T1.2", "T0.4-1.2", "hot − cold"}
    assert "(cold)" in rows["T0.4"] and "(hot)" in rows["T1.2"] and "(mix)" in rows["T0.4-1.2"]
    assert rows["T0.4"].split()[2] == "60.0"  # at N=1: 12 of 20 (its interval: below)
    assert rows["T1.2"].split()[-3] == "70.0"
    assert rows["hot − cold"].split()[3] == "+10.0"
    answer = " ".join(line.strip() for line in lines[start + 8 : start + 10])
    assert answer.startswith("overall: no significant difference between hot (1.2) and cold (0.4)")
    assert "(hot − cold +10.0 points, 95% CI [" in answer
    by_level = " ".join(line.strip() for line in lines[start + 10 :] if line.strip())
    assert by_level.startswith("hot − cold at N=4 by level: 1: -100.0 [-100, -100]*, 2: +0.0")
    assert "5: +100.0 [100, 100]*" in by_level
    assert lines[-1] == f"full report: {out / 'report.md'}"
    assert "1 unfinished run skipped" in printed
    # the numbers are the report's: the same interval for cold at N=1
    summary = pd.read_csv(out / "summary.csv")
    cold = summary[
        (summary["temperature"] == "T0.4")
        & (summary["scope"] == "overall")
        & (summary["method"] == "weighted")
        & (summary["N"] == 1)
    ].iloc[0]
    assert rows["T0.4"].split()[2:5] == [
        f"{100 * cold['mean']:.1f}",
        f"[{100 * cold['lo']:.0f},",
        f"{100 * cold['hi']:.0f}]",
    ]


def cli_report(study, out, *options: str) -> str:
    """`python -m hotncold.analyze <sweep> --out <out> <options>`'s report.md."""
    assert main([str(study / "sweep"), "--out", str(out), *options]) == 0
    return (out / "report.md").read_text()


def verdict_line(text: str, scope: str) -> str:
    return next(x for x in text.splitlines() if x.startswith(f"- {scope}: "))


def test_cli_ci_sets_the_interval_level(study, tmp_path):
    # level 4's per-problem differences are 0, 0, +1, +1 (both seeds): resampled, the mean is
    # k/4 with k ~ Binomial(4, 1/2), so the 50% interval is [25, 75] (excludes 0) while the
    # 95% one is [0, 100] (does not)
    at_95 = cli_report(study, tmp_path / "r95", "--bootstrap", "2000")
    at_50 = cli_report(study, tmp_path / "r50", "--bootstrap", "2000", "--ci", "0.5")
    assert verdict_line(at_95, "level 4") == (
        "- level 4: no significant difference between hot (1.2) and cold (0.4) at N=4 "
        "(hot − cold +50.0 points, 95% CI [0.0, 100.0]; 4 problems × 2 seeds, weighted)"
    )
    assert verdict_line(at_50, "level 4") == (
        "- level 4: hot (1.2) beats cold (0.4) by +50.0 points at N=4, 50% CI [25.0, 75.0] "
        "(4 problems × 2 seeds, weighted)"
    )
    wide = pd.read_csv(tmp_path / "r95" / "summary.csv")
    narrow = pd.read_csv(tmp_path / "r50" / "summary.csv")
    assert (narrow["mean"] == wide["mean"]).all()
    assert ((wide["lo"] <= narrow["lo"]) & (narrow["hi"] <= wide["hi"])).all()
    assert (narrow["hi"] - narrow["lo"] < wide["hi"] - wide["lo"]).any()


def test_cli_point_sets_the_tolerance_of_the_mix(study, tmp_path):
    # overall at N=1 the mix is 65, the best single temperature (hot) 70: within 10 points,
    # not within 1
    def within(out) -> pd.DataFrame:
        table = pd.read_csv(out / "mix_within_point.csv", keep_default_na=False)
        return table.set_index(["scope", "scope_value", "N"])

    default = cli_report(study, tmp_path / "r1", "--bootstrap", "100")
    loose = cli_report(study, tmp_path / "r10", "--bootstrap", "100", "--point", "10")
    assert not within(tmp_path / "r1").loc[("overall", "", 1), "within"]
    assert within(tmp_path / "r10").loc[("overall", "", 1), "within"]
    assert within(tmp_path / "r1")["within"].sum() < within(tmp_path / "r10")["within"].sum()
    assert "within 1 point of the best single temperature" in default
    assert "within 10 points of the best single temperature" in loose


def test_cli_seed_sets_the_bootstrap_resamples(study, tmp_path):
    cli_report(study, tmp_path / "s0", "--bootstrap", "300")
    text = cli_report(study, tmp_path / "s1", "--bootstrap", "300", "--seed", "1")
    cli_report(study, tmp_path / "s1again", "--bootstrap", "300", "--seed", "1")
    s0, s1, again = (pd.read_csv(tmp_path / d / "summary.csv") for d in ("s0", "s1", "s1again"))
    assert s1.equals(again)  # one seed, one set of resamples
    assert (s1["mean"] == s0["mean"]).all()  # the estimates do not depend on it...
    assert ((s1["lo"] != s0["lo"]) | (s1["hi"] != s0["hi"])).any()  # ...the intervals do
    assert "(300 resamples, seed 1)" in text


def test_hot_and_cold_can_be_chosen(study, tmp_path):
    a = analyze(
        [study / "sweep"], tmp_path / "r", Options(resamples=200, hot=COLD, cold=HOT)
    )  # reversed on purpose
    row = a.comparisons[
        (a.comparisons["kind"] == "hot_vs_cold")
        & (a.comparisons["scope_value"] == "5")
        & (a.comparisons["N"] == 4)
        & (a.comparisons["method"] == "weighted")
    ].iloc[0]
    assert row["a_temperature"] == "T0.4" and row["mean"] == pytest.approx(-1.0)


def test_other_aggregation_recomputes_curves(study):
    # with `last`, scores are those of the single step: the same as `min` here
    data = collect([study / "sweep"], agg="last")
    assert set(data.results["agg"]) == {"last"}
    base = collect([study / "sweep"]).results
    assert data.results["setting"].iloc[0] != base["setting"].iloc[0]
    merged = data.results.merge(base, on=["run", "uid", "N", "method"])
    single = merged[merged["temp_kind_x"] == "single"]
    assert (single["accuracy_x"] == single["accuracy_y"]).all()


def test_unknown_temperature_fields_name_a_schedule():
    t = describe_temperature({"name": "decay", "values": [1.2], "ratios": None, "decay": 0.4})
    assert (t.tag, t.kind) == ("T1.2_decay0.4", "schedule") and math.isnan(t.value)
    # a schedule this version knows is named by the plan itself
    known = describe_temperature(
        {
            "values": [1.0],
            "ratios": None,
            "schedule": "linear",
            "start": 1.2,
            "end": 0.4,
            "horizon": 8,
        }
    )
    assert known.kind == "schedule" and known.tag.startswith("T1_lin1.2-0.4")
    assert describe_temperature({"values": [0.4, 1.2], "ratios": [0.25, 0.75]}).kind == "mix"
    single = describe_temperature({"name": "cold", "values": [0.4], "ratios": None})
    assert (single.tag, single.kind, single.value) == ("T0.4", "single", 0.4)


def handmade_search_run(path, compute: bool) -> None:
    """A finished beam-search run written directly with hotncold's writers."""
    cfg = Config(out_dir=str(path), n=4, approach=ApproachConfig(name="beam_search"))
    cfg.dataset = DatasetConfig(per_level=1)
    RunDir(path).prepare(cfg)
    grader = Grader()
    records = []
    for i, p in enumerate(load_problems(cfg.dataset)):
        cs = [
            Completion(
                text=f"\\boxed{{{p.answer if k == 0 else 0}}}",
                steps=["x"],
                step_scores=[0.9 if k == 0 else 0.1],
                step_temperatures=[0.8],
                num_tokens=5,
                finish_reason="eos",
                temperature=0.8,
                group=k // 2,
            )
            for k in range(4)
        ]
        record = grade_problem(p, "prompt", cs, grader, "min")
        if compute:
            record["compute"] = {"generated_tokens": 100 * (i + 1), "prm_tokens": 7}
        records.append(record)
    append_jsonl(RunDir(path).completions, records)
    metrics = metrics_from_records(records, 4, 64, 0, finished_only=True)
    metrics["agg_strategy"] = "min"
    write_json(RunDir(path).metrics, metrics)
    totals = {"generated_tokens": 1000, "prm_tokens": 50, "prm_steps_scored": 20}
    write_json(RunDir(path).info, {"status": "finished", "totals": totals})
    # a newer hotncold may add schedule fields: reading must not depend on knowing them
    config = yaml.safe_load((path / "config.yaml").read_text())
    config["temperature"]["schedule"] = None
    (path / "config.yaml").write_text(yaml.safe_dump(config))


def test_search_runs_count_compute_only_at_the_full_budget(tmp_path):
    handmade_search_run(tmp_path / "beam", compute=False)
    results = collect([tmp_path]).results
    assert set(results["approach"]) == {"beam_search-m4"}
    at_n = results[results["N"] == 4]
    assert (at_n["gen_tokens"] == 1000 / 5).all() and (at_n["prm_tokens"] == 50 / 5).all()
    assert (at_n["prm_steps"] == 20 / 5).all()
    assert results[results["N"] < 4]["gen_tokens"].isna().all()
    # subsets of grouped (DVTS-like) completions: pass@1 is 1/4, naive at N=4 right
    acc = results.set_index(["uid", "method", "N"])["accuracy"]
    assert (acc.xs(("naive", 4), level=("method", "N")) == 1.0).all()

    handmade_search_run(tmp_path / "other" / "beam2", compute=True)
    per_record = collect([tmp_path / "other"]).results
    at_n = per_record[per_record["N"] == 4].drop_duplicates("uid").sort_values("uid")
    assert sorted(at_n["gen_tokens"]) == [100.0, 200.0, 300.0, 400.0, 500.0]
    # a report on a setting with one temperature says what it cannot compare
    a = analyze([tmp_path / "other"], tmp_path / "rep", Options(resamples=100))
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "need at least two single-temperature" in text
    assert a.comparisons.empty


def test_duplicate_runs_are_counted_once(study, tmp_path, caplog):
    import shutil

    shutil.copytree(study / "sweep" / "cold0", tmp_path / "copy" / "cold0")
    with caplog.at_level(logging.WARNING, logger="hotncold.analyze"):
        data = collect([study / "sweep", tmp_path / "copy"])
    assert len(data.runs) == 6 and any("repeats" in s.reason for s in data.skipped)
    info = json.loads((study / "sweep" / "cold0" / "run.json").read_text())
    assert info["status"] == "finished"


def test_pairs_without_a_shared_seed_average_seeds_first(study, tmp_path):
    import shutil

    for name in ("cold0", "hot1"):
        shutil.copytree(study / "sweep" / name, tmp_path / name)
    a = analyze([tmp_path], tmp_path / "r", Options(resamples=300))
    row = a.comparisons[
        (a.comparisons["kind"] == "hot_vs_cold")
        & (a.comparisons["scope_value"] == "5")
        & (a.comparisons["method"] == "weighted")
        & (a.comparisons["N"] == 4)
    ].iloc[0]
    assert not row["paired_seeds"] and row["seeds"] == 1 and row["mean"] == pytest.approx(1.0)


def test_datasets_without_levels_or_subjects(study, tmp_path):
    for name in ("cold0", "hot0"):
        src, dst = study / "sweep" / name, tmp_path / name
        dst.mkdir()
        for f in ("config.yaml", "metrics.json", "run.json"):
            (dst / f).write_text((src / f).read_text())
        records = [
            json.loads(line) for line in (src / "completions.jsonl").read_text().splitlines()
        ]
        for r in records:
            r["problem"]["level"] = r["problem"]["subject"] = None
        append_jsonl(dst / "completions.jsonl", records)
    a = analyze([tmp_path], tmp_path / "r", Options(resamples=200))
    assert set(a.summary["scope"]) == {"overall"}
    text = (tmp_path / "r" / "report.md").read_text()
    assert "- overall: no significant difference" in text and "level 1" not in text
    missing = analyze([tmp_path], tmp_path / "r2", Options(resamples=200, hot=2.0))
    assert missing.comparisons[missing.comparisons["kind"] == "hot_vs_cold"].empty
    note = "name no two different single temperatures"
    assert note in (tmp_path / "r2" / "report.md").read_text()


@pytest.mark.slow
def test_real_sweep_on_the_embedded_model_then_its_report(real_engine, tmp_path):
    """A real basic-launcher sweep (vLLM on the CPU, the session's engine), then the
    analyzer's CLI on its folder."""
    import subprocess
    import sys

    from conftest import ROOT, sweep_in_process

    sweep = tmp_path / "sweep"
    args = ["temperature=cold,hot", "seed=0,1", "n=4", "dataset.per_level=1"]
    sweep_in_process(*args, "model.max_tokens=64", f"hydra.sweep.dir={sweep}")
    assert len(list(sweep.glob("*/run.json"))) == 4
    out = tmp_path / "report"
    analyze_args = [str(sweep), "--out", str(out), "--bootstrap", "1000"]
    proc = subprocess.run(
        [sys.executable, "-m", "hotncold.analyze", *analyze_args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (out / "report.md").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    assert {f.name.split("_")[0] for f in figures} == {
        "accuracy",
        "hot",
        "level",
        "oracle",
        "diversity",
        "compute",
    }
    for f in figures:
        assert png_ok(f) and f"figures/{f.name}" in text
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 4 * 5 * 3 * 4  # runs x problems x N in 1, 2, 4 x methods
    assert set(results["temperature"]) == {"T0.4", "T1.2"}
    # each level's verdict is the one its numbers imply: the paired mean difference (computed
    # here from the per-problem table), and whether comparisons.csv's interval excludes 0
    comparisons = pd.read_csv(out / "comparisons.csv", keep_default_na=False)
    weighted = results[(results["method"] == "weighted") & (results["N"] == 4)]
    for level in range(1, 6):
        cells = weighted[weighted["level"] == level].pivot_table(
            index=["seed", "uid"], columns="temperature", values="accuracy"
        )
        mean = (cells["T1.2"] - cells["T0.4"]).mean()
        row = comparisons[
            (comparisons["kind"] == "hot_vs_cold")
            & (comparisons["scope"] == "level")
            & (comparisons["scope_value"].astype(str) == str(level))
            & (comparisons["method"] == "weighted")
            & (comparisons["N"] == 4)
        ].iloc[0]
        assert row["mean"] == pytest.approx(mean) and row["lo"] <= mean <= row["hi"]
        assert bool(row["significant"]) == (row["lo"] > 0 or row["hi"] < 0)
        problems = cells.index.get_level_values("uid").nunique()
        assert problems == 1  # dataset.per_level=1
        sample = "1 problem × 2 seeds, weighted"
        lo, hi = (f"{100 * row[k]:.1f}" for k in ("lo", "hi"))
        signed = f"{100 * row['mean']:+.1f}"
        if not row["significant"]:
            expected = (
                f"- level {level}: no significant difference between hot (1.2) and cold (0.4) "
                f"at N=4 (hot − cold {signed} points, 95% CI [{lo}, {hi}]; {sample})"
            )
        elif mean > 0:
            expected = (
                f"- level {level}: hot (1.2) beats cold (0.4) by {signed} points at N=4, "
                f"95% CI [{lo}, {hi}] ({sample})"
            )
        else:
            flipped = [f"{-100 * row[k]:.1f}" for k in ("hi", "lo")]
            expected = (
                f"- level {level}: cold (0.4) beats hot (1.2) by {-100 * row['mean']:+.1f} "
                f"points at N=4, 95% CI [{flipped[0]}, {flipped[1]}] ({sample})"
            )
        lines = [x for x in text.splitlines() if x.startswith(f"- level {level}: ")]
        assert lines[0] == expected  # the Answers section (the setting's section repeats it)
    # the tidy table reproduces every run's own metrics.json and run.json
    runs = pd.read_csv(out / "runs.csv")
    for _, run in runs.iterrows():
        metrics = json.loads((sweep / run["run"] / "metrics.json").read_text())
        mine = results[results["run"] == run["run"]]
        for method in ("naive", "weighted", "majority", "pass"):
            got = mine[(mine["method"] == method)].groupby("N")["accuracy"].mean()
            for k, value in got.items():
                assert value == pytest.approx(metrics["overall"][method][str(k)])
        at_n = mine[(mine["N"] == 4) & (mine["method"] == "pass")]
        assert at_n["gen_tokens"].sum() == pytest.approx(run["generated_tokens"])
    summary = pd.read_csv(out / "summary.csv")
    overall = summary[(summary["scope"] == "overall") & (summary["method"] == "weighted")]
    assert len(overall) == 2 * 3 and (overall["seeds"] == 2).all()
    assert (overall["lo"] <= overall["mean"]).all() and (overall["mean"] <= overall["hi"]).all()


def test_a_mix_that_did_not_sample_its_ratios_is_labelled_by_what_it_sampled(study, tmp_path):
    """Runs whose records say they sampled 0.4 three times as often as 1.2 (an uneven split
    given to the first value every time, as before results version 2) are not the equal mix
    their config names: both seeds get one label carrying the realised shares."""
    for seed in (0, 1):
        run = tmp_path / "tilted" / f"mix{seed}"
        shutil.copytree(study / "sweep" / f"mix{seed}", run)
        lines = (run / "completions.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        for r in records:
            for c in r["completions"]:
                c["extra"]["sampled_temperatures"] = {"0.4": 3, "1.2": 1}
        (run / "completions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    tilted = collect([tmp_path / "tilted"])
    assert set(tilted.runs["temperature"]) == {"T0.4-1.2_real0.75-0.25"}
    assert set(tilted.results["temperature"]) == {"T0.4-1.2_real0.75-0.25"}
    assert tilted.results["config"].str.endswith(":T0.4-1.2_real0.75-0.25").all()
    assert set(tilted.runs["temp_kind"]) == {"mix"}
    # the runs as they were sampled (2/2 per problem) keep their nominal label
    plain = collect([study / "sweep"])
    assert "T0.4-1.2" in set(plain.runs["temperature"])
    assert not plain.runs["temperature"].str.contains("_real").any()


def test_terminal_columns_stay_apart_and_aligned_when_a_cell_is_wider_than_the_default():
    """The quickstart printed `-15.8 [-25, -7]*-24.9 [-40, -11]*`: cells of 17 characters ran
    into each other in 17-character columns."""
    from hotncold.analyze.render import _cell, _columns

    diffs = [_cell(-0.158, -0.25, -0.07, True, True), _cell(-0.249, -0.40, -0.11, True, True)]
    lines = _columns(
        [("", ["N=1", "N=2"]), ("T0.4 (cold)", ["15.8 [7, 25] "] * 2), ("hot − cold", diffs)], 12
    )
    assert lines[2].split() == [
        "hot",
        "−",
        "cold",
        "-15.8",
        "[-25,",
        "-7]*",
        "-24.9",
        "[-40,",
        "-11]*",
    ]
    assert len({len(line) for line in lines}) == 1  # every row as wide: the columns line up
    assert all(line.endswith(("N=2", "25] ", "-11]*")) for line in lines)
