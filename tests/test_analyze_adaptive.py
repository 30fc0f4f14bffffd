"""The analyzer's adaptive Best-of-N tables on run directories whose outcomes are known.

Best-of-N runs at 0.4 and 1.2 and adaptive_bon runs over the ladder [0.4, 1.2] (n=4: a probe
of 2 at 0.4, the rest, 2, at the rung the probe picks), all written by hotncold's run loop on
test_analyze.py's scripted engine: each problem is right or wrong at each temperature by its
table. Here a wrong cold sample answers a different wrong number per sample, so a cold probe
agrees exactly on the problems cold solves: adaptive stays cold there and goes hot elsewhere,
so it is right wherever either temperature is (the oracle), 19 of 20 problems.
"""

from __future__ import annotations

import pytest
from fakes import ScriptedEngine, problem_of
from test_analyze import COLD, HOT, ROWS, config, right, solver

import hotncold.engine.vllm_engine
import hotncold.experiment.run
from hotncold.analyze import Options, analyze
from hotncold.config import AdaptiveBoNConfig


def spread_cold(request, i):
    """test_analyze's solver, but a wrong cold sample answers a+1+i (the probe disagrees)."""
    row = ROWS[problem_of(request.prompt)]
    if request.temperature == COLD and not right(COLD, row["unique_id"], row["level"]):
        return f"1 + 1 = 3, so the answer is \\boxed{{{int(row['answer']) + 1 + i}}}."
    return solver(request, i)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("adaptive")
    with pytest.MonkeyPatch.context() as mp:
        engine = ScriptedEngine(spread_cold)
        mp.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: engine)
        for seed in (0, 1):
            for name, values in (("cold", [COLD]), ("hot", [HOT])):
                hotncold.experiment.run.execute(
                    config(root / "runs" / f"{name}{seed}", values, seed)
                )
            hotncold.experiment.run.execute(
                config(
                    root / "runs" / f"adaptive{seed}",
                    [COLD, HOT],
                    seed,
                    approach=AdaptiveBoNConfig(),
                )
            )
    return root, analyze([root / "runs"], root / "report", Options(resamples=500))


def test_chosen_temperatures_per_level(report):
    _, a = report
    # the ladder is no mix with shares: its tag stays the ladder's, never `_real...`
    assert set(a.configs["temperature"]) == {"T0.4", "T1.2", "T0.4-1.2"}
    chosen = a.adaptive_chosen.set_index(["scope", "scope_value", "chosen_temperature"])
    # cold solves 12 of 20 problems: levels 1 and 2, two of level 3 and two of level 4
    assert chosen.loc[("overall", "", COLD), "share"] == pytest.approx(0.6)
    assert chosen.loc[("overall", "", HOT), "share"] == pytest.approx(0.4)
    assert chosen.loc[("overall", "", COLD), "cases"] == 40  # 20 problems x 2 seeds
    assert chosen.loc[("level", "1", COLD), "share"] == 1.0
    assert chosen.loc[("level", "5", HOT), "share"] == 1.0
    assert chosen.loc[("level", "3", HOT), "share"] == pytest.approx(0.5)


def test_adaptive_against_the_best_fixed_temperature_paired(report):
    _, a = report
    v = a.adaptive_versus.set_index(["scope", "scope_value"])
    overall = v.loc[("overall", "")]
    # hot is the best fixed (14 of 20), adaptive is right on 19 of 20
    assert overall["best_fixed"] == "T1.2" and overall["best_fixed_accuracy"] == pytest.approx(0.7)
    assert overall["adaptive"] == pytest.approx(0.95)
    assert overall["diff"] == pytest.approx(0.25) and overall["diff_lo"] > 0
    assert overall["problems"] == 20 and overall["seeds"] == 2 and overall["n"] == 4
    # per level the best fixed temperature is that level's: cold at level 1
    assert v.loc[("level", "1"), "best_fixed"] == "T0.4"
    assert v.loc[("level", "1"), "diff"] == pytest.approx(0.0)


def test_regret_against_best_fixed_and_oracle_mean_and_tail(report):
    _, a = report
    r = a.adaptive_regret.set_index(["scope", "scope_value", "against"])
    best = r.loc[("overall", "", "best_fixed")]
    # hot minus adaptive: -1 on the 5 problems only cold solves, 0 elsewhere
    assert best["regret"] == pytest.approx(-0.25) and best["tail_share"] == 0.0
    oracle = r.loc[("overall", "", "oracle")]
    assert oracle["regret"] == pytest.approx(0.0) and oracle["tail_share"] == 0.0
    assert oracle["problems"] == 20


def test_the_report_shows_the_adaptive_section(report):
    root, _ = report
    text = (root / "report" / "report.md").read_text()
    assert "## Adaptive Best-of-N" in text
    assert "| overall | 60.0 | 40.0 |" in text  # the chosen temperatures' shares
    assert "T1.2 (70.0)" in text and "+25.0" in text
    assert (root / "report" / "adaptive_regret.csv").exists()
