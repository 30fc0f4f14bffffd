"""Re-scoring finished runs with another PRM (`python -m hotncold.rescore`): derived run
directories, exactness, recomputed metrics, batching across runs, resume, the lock; the real
path through vLLM is the slow test at the end."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_model_config
from fakes import ScriptedEngine
from test_run import solver

import hotncold.engine.vllm_engine
from hotncold import rescore as rescore_command
from hotncold.config import (
    ApproachConfig,
    Config,
    ConfigError,
    DatasetConfig,
    ModelConfig,
    RescoreConfig,
    TemperatureConfig,
)
from hotncold.evaluation.metrics import metrics_from_records
from hotncold.experiment import lock
from hotncold.experiment.naming import config_hash, result_config, run_name
from hotncold.experiment.rescore import rescore
from hotncold.experiment.run import execute
from hotncold.prm import equation_checker
from hotncold.prm.base import aggregate
from hotncold.prm.registry import prm_config


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]


@pytest.fixture
def engine(monkeypatch):
    fake = ScriptedEngine(solver)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: fake)
    return fake


def source_run(tmp_path: Path, name: str = "sweep/src", **kw) -> Path:
    cfg = Config(
        out_dir=str(tmp_path / name), n=4, batch_size=5, dataset=DatasetConfig(per_level=4), **kw
    )
    cfg.run_name = run_name(dataclasses.asdict(cfg))
    execute(cfg)
    return tmp_path / name


def checker(**settings) -> RescoreConfig:
    return RescoreConfig(prm=prm_config("equation_checker", **settings), batch_size=5)


def test_rescoring_with_the_runs_own_prm_reproduces_it_exactly(tmp_path, engine):
    src = source_run(tmp_path)
    [job] = rescore(src, checker())
    out = job.rundir.path
    assert out.parent == tmp_path / "sweep" / "rescored"
    assert "_equation_checker-rescored-equation_checker_" in out.name
    assert records(out) == [
        {**r, "compute": records(out)[i]["compute"]} for i, r in enumerate(records(src))
    ]
    mine, theirs = (
        json.loads((out / "metrics.json").read_text()),
        json.loads((src / "metrics.json").read_text()),
    )
    assert mine == theirs
    info = json.loads((out / "run.json").read_text())
    source_cfg = yaml.safe_load((src / "config.yaml").read_text())
    assert info["status"] == "finished" and info["problems"] == {"total": 20, "done": 20}
    assert info["rescored_from"] == {
        "run_dir": str(src),
        "run_name": source_cfg["run_name"],
        "config_hash": config_hash(source_cfg),
        "samples": config_hash(source_cfg),  # the source generated them
    }
    assert info["guided_by"] is None and info["scored_by"] == "equation_checker"
    assert info["totals"]["generated_tokens"] == 0  # the re-score generated nothing
    # identical (problem, steps) pairs are scored once (this script repeats two texts)
    distinct = {(r["uid"], tuple(c["steps"])) for r in records(src) for c in r["completions"]}
    assert info["totals"]["prm_steps_scored"] == sum(len(steps) for _, steps in distinct)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["source_prm"] == result_config({"prm": source_cfg["prm"]})["prm"]
    assert run_name(cfg) == out.name  # named from its resolved config


def test_another_prm_scores_every_step_again_and_metrics_follow(tmp_path, engine):
    src = source_run(tmp_path)
    cfg = checker(correct_score=0.75, wrong_score=0.25, neutral_score=0.5, agg_strategy="mean")
    [job] = rescore(src, cfg)
    old, new = records(src), records(job.rundir.path)
    mapping = {1.0: 0.75, 0.0: 0.25, 0.5: 0.5}
    for a, b in zip(old, new):
        assert [c["text"] for c in a["completions"]] == [c["text"] for c in b["completions"]]
        assert [c["correct"] for c in a["completions"]] == [c["correct"] for c in b["completions"]]
        for ca, cb in zip(a["completions"], b["completions"]):
            assert cb["step_scores"] == [mapping[s] for s in ca["step_scores"]]
            assert cb["score"] == aggregate(cb["step_scores"], "mean")
    metrics = json.loads((job.rundir.path / "metrics.json").read_text())
    expected = metrics_from_records(
        new, 4, 256, 0, finished_only=True, selection_temperatures=[0.01, 0.1, 0.3, 1.0]
    )
    assert metrics == {**expected, "agg_strategy": "mean"}
    # another PRM, another derived run; the source stays as it was
    again = rescore(src, checker())[0].rundir.path
    assert job.rundir.path.name != again.name
    assert records(src) == old
    # a re-scored run re-scored again: the same samples, from the same source PRM
    [twice] = rescore(job.rundir.path, _to(tmp_path, "twice"))
    first = json.loads((job.rundir.path / "run.json").read_text())["rescored_from"]
    second = json.loads((twice.rundir.path / "run.json").read_text())["rescored_from"]
    assert second["samples"] == first["samples"] and second["run_dir"] == str(job.rundir.path)
    assert twice.cfg.source_prm == job.cfg.source_prm


def test_a_sweep_is_rescored_in_batches_across_its_runs(tmp_path, engine, monkeypatch):
    for t in (0.4, 1.2):
        source_run(tmp_path, f"sweep/T{t}", temperature=TemperatureConfig(values=[t]))
    calls = []
    real = equation_checker.EquationChecker._score_new
    monkeypatch.setattr(
        equation_checker.EquationChecker,
        "_score_new",
        lambda self, items: calls.append({i.problem for i in items}) or real(self, items),
    )
    cfg = checker()
    cfg.batch_size = 8  # problems per PRM call, over both runs
    jobs = rescore(tmp_path / "sweep", cfg)
    assert len(jobs) == 2 and {len(records(j.rundir.path)) for j in jobs} == {20}
    # 40 records, 8 per call: each problem's two records (one per run) in the same call
    assert len(calls) == 5 and all(len(c) == 4 for c in calls)
    # the derived runs themselves are not re-scored again by a second pass
    assert len(rescore(tmp_path / "sweep", cfg)) == 2


def test_an_interrupted_rescore_resumes_where_it_stopped(tmp_path, engine, monkeypatch):
    src = source_run(tmp_path)
    whole = rescore(src, _to(tmp_path, "a"))
    real = equation_checker.EquationChecker._score_new
    seen: list[int] = []

    def stop_at_third(self, items):
        seen.append(len({i.problem for i in items}))
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(self, items)

    monkeypatch.setattr(equation_checker.EquationChecker, "_score_new", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        rescore(src, _to(tmp_path, "b"))
    [out] = (tmp_path / "b").iterdir()
    assert len(records(out)) == 10
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted" and info["problems"]["done"] == 10
    monkeypatch.setattr(equation_checker.EquationChecker, "_score_new", real)
    counted = []
    monkeypatch.setattr(
        equation_checker.EquationChecker,
        "_score_new",
        lambda self, items: counted.append({i.problem for i in items}) or real(self, items),
    )
    [job] = rescore(src, _to(tmp_path, "b"))
    assert job.rundir.path == out
    assert sum(len(c) for c in counted) == 10  # only the problems not yet re-scored
    assert [r["uid"] for r in records(out)] == [r["uid"] for r in records(whole[0].rundir.path)]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "compute"} for r in rs]  # noqa: E731
    assert strip(records(out)) == strip(records(whole[0].rundir.path))
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and len(info["sessions"]) == 2


def _to(tmp_path: Path, name: str) -> RescoreConfig:
    cfg = checker(wrong_score=0.25)
    cfg.out_dir = str(tmp_path / name)
    return cfg


def test_a_second_rescore_into_a_held_run_is_refused(tmp_path, engine):
    src = source_run(tmp_path)
    [job] = rescore(src, _to(tmp_path, "x"))
    held = lock.acquire(job.rundir.path, "rescore")
    try:
        with pytest.raises(ConfigError, match=r"rescore"):
            rescore(src, _to(tmp_path, "x"))
    finally:
        held.release()


def test_a_rescored_search_records_the_prm_that_guided_it(tmp_path, engine):
    src = source_run(tmp_path, approach=ApproachConfig(name="beam_search", num_iterations=2))
    [job] = rescore(src, checker(wrong_score=0.25))
    info = json.loads((job.rundir.path / "run.json").read_text())
    assert info["guided_by"] == "equation_checker" and info["scored_by"] == "equation_checker"
    for old, new in zip(records(src), records(job.rundir.path)):
        c = new["compute"]
        assert c["generated_tokens"] == old["compute"]["generated_tokens"]
        assert c["guide_prm_tokens"] == old["compute"]["prm_tokens"]
        assert c["prm_flops"] == 0 and c["flops"] == old["compute"]["generator_flops"]


def test_an_ordinary_run_cannot_claim_to_be_rescored(tmp_path, engine):
    cfg = Config(out_dir=str(tmp_path / "r"), source_prm={"name": "trl"})
    with pytest.raises(ConfigError, match="source_prm is set only by"):
        execute(cfg)


def test_the_command_composes_the_prm_group_and_refuses_bad_input(tmp_path, engine, capsys):
    src = source_run(tmp_path)
    assert rescore_command.main([str(src), "prm=equation_checker", "prm.wrong_score=0.25"]) == 0
    printed = capsys.readouterr().out
    assert "-rescored-equation_checker_" in printed
    [out] = (tmp_path / "sweep" / "rescored").iterdir()
    assert yaml.safe_load((out / "config.yaml").read_text())["prm"]["wrong_score"] == 0.25
    assert rescore_command.main([str(tmp_path / "nowhere"), "prm=equation_checker"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert rescore_command.main([str(src)]) == 0  # the default PRM: equation_checker
    assert rescore_command.main([]) == 2
    capsys.readouterr()
    assert rescore_command.main([str(src), "prm=no_such_prm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_prm" in err[0] and err[0].startswith("hotncold.rescore:")
    assert rescore_command.main([str(src), "prm=equation_checker", "prm.model_path=x"]) == 2
    assert "model_path" in capsys.readouterr().err


def test_the_analyzer_compares_prms_on_the_same_samples_and_keeps_guided_runs_apart(
    tmp_path, engine
):
    from hotncold.analyze.pipeline import analyze
    from hotncold.analyze.tables import Options

    src = source_run(tmp_path, "sweep/bon")
    beam = source_run(
        tmp_path, "sweep/beam", approach=ApproachConfig(name="beam_search", num_iterations=2)
    )
    # the inverted checker: right steps score 0, wrong ones 1 (naive then picks wrong answers)
    inverted = dict(correct_score=0.0, wrong_score=1.0)
    cfg = checker(**inverted)
    jobs = {j.source.path: j for j in rescore(tmp_path / "sweep", cfg)}
    # a beam search *guided* by the inverted checker: the same setting but for who guided it
    guided = source_run(
        tmp_path,
        "sweep/guided",
        approach=ApproachConfig(name="beam_search", num_iterations=2),
        prm=prm_config("equation_checker", **inverted),
    )
    a = analyze([tmp_path / "sweep"], tmp_path / "analysis", Options(resamples=200))
    runs = a.collection.runs.set_index("path")
    derived_bon, derived_beam = (str(jobs[p].rundir.path.resolve()) for p in (src, beam))
    assert pd.isna(runs.loc[derived_bon, "guided_by"])  # no PRM steers Best-of-N
    assert runs.loc[derived_beam, "guided_by"] == "equation_checker"
    assert runs.loc[str(guided.resolve()), "guided_by"] == "equation_checker"  # its own PRM
    assert {runs.loc[p, "scored_by"] for p in (derived_beam, str(guided.resolve()))} == {
        "equation_checker"
    }
    # five runs, five settings: the re-scored beam search is not pooled with the guided one
    assert runs["setting"].nunique() == 5
    labels = a.collection.settings
    assert labels[runs.loc[derived_beam, "setting"]].count("re-scoring equation_checker's") == 1
    assert "re-scoring" not in labels[runs.loc[str(guided.resolve()), "setting"]]
    # paired over the same completions: re-scored (A) minus source (B), naive at N=4: -1 exactly
    cmp = a.prm_comparisons
    assert len(cmp.drop_duplicates(["a", "b"])) == 2  # each source with its re-scoring only
    row = cmp[(cmp["scope"] == "overall") & (cmp["method"] == "naive") & (cmp["N"] == 4)]
    bon = row[row["approach"] == "best_of_n"].iloc[0]
    assert (
        bon["a"] == runs.loc[derived_bon, "config"]
        and bon["b"] == runs.loc[str(src.resolve()), "config"]
    )
    assert bon["mean"] == pytest.approx(-1.0) and bon["significant"] and bon["problems"] == 20
    # pass@N does not depend on the scores: no difference at all
    passes = cmp[(cmp["method"] == "pass") & (cmp["scope"] == "overall")]
    assert (passes["mean"] == 0).all()
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "## PRMs on identical samples" in report and "never pooled with runs" in report
    assert "### Selection temperature (soft Best-of-N)" in report
    sel = a.selection
    top = sel[
        (sel["config"] == runs.loc[str(src.resolve()), "config"]) & (sel["scope"] == "overall")
    ]
    assert set(top["tau"]) == {0.01, 0.1, 0.3, 1.0}
    assert (tmp_path / "analysis" / "prm_comparisons.csv").is_file()
    assert (tmp_path / "analysis" / "selection.csv").is_file()


@pytest.mark.slow
def test_a_real_run_rescored_through_vllm_resumed_and_analyzed_beside_its_source(
    real_engine, tmp_path, monkeypatch
):
    from hotncold.analyze.pipeline import analyze
    from hotncold.analyze.tables import Options
    from hotncold.prm import self_certainty

    model = tiny_model_config(ModelConfig)
    model.max_tokens = 48
    src_cfg = Config(
        out_dir=str(tmp_path / "sweep" / "src"),
        n=4,
        model=model,
        dataset=DatasetConfig(per_level=1, levels=[1, 2, 3]),
    )
    src_cfg.run_name = run_name(dataclasses.asdict(src_cfg))
    execute(src_cfg)
    src = tmp_path / "sweep" / "src"
    # as prm=self_certainty composes it (its option aggregates by the mean)
    cfg = RescoreConfig(prm=prm_config("self_certainty", agg_strategy="mean"), batch_size=1)
    calls = real_engine.stats.calls
    [job] = rescore(tmp_path / "sweep", cfg)
    assert real_engine.stats.calls == calls  # prompt log-probabilities only: nothing generated
    old, new = records(src), records(job.rundir.path)
    assert len(new) == 3
    for a, b in zip(old, new):
        for ca, cb in zip(a["completions"], b["completions"]):
            assert cb["text"] == ca["text"] and len(cb["step_scores"]) == len(ca["steps"])
            assert all(0.0 < s <= 1.0 for s in cb["step_scores"])
            assert cb["score"] == pytest.approx(sum(cb["step_scores"]) / len(cb["step_scores"]))
    # self-certainty is no equation checker: some step is scored otherwise than 0, 0.5 or 1
    assert {s for r in new for c in r["completions"] for s in c["step_scores"]} - {0.0, 0.5, 1.0}
    metrics = json.loads((job.rundir.path / "metrics.json").read_text())
    assert metrics["agg_strategy"] == "mean"
    recomputed = metrics_from_records(new, 4, 256, 0, finished_only=True)
    assert metrics["per_problem"] == recomputed["per_problem"]
    info = json.loads((job.rundir.path / "run.json").read_text())
    assert info["status"] == "finished" and info["totals"]["prm_tokens"] > 0
    assert all(r["compute"]["prm_flops"] > 0 for r in new)

    # interrupted after its first problem, then resumed: only the other two are scored again
    real = self_certainty.SelfCertainty._score_new
    seen: list[int] = []

    def stop_at_second(self, items):
        seen.append(len(items))
        if len(seen) == 2:
            raise KeyboardInterrupt
        return real(self, items)

    monkeypatch.setattr(self_certainty.SelfCertainty, "_score_new", stop_at_second)
    cfg.out_dir = str(tmp_path / "again")
    with pytest.raises(KeyboardInterrupt):
        rescore(src, cfg)
    [again] = (tmp_path / "again").iterdir()
    assert len(records(again)) == 1
    monkeypatch.setattr(self_certainty.SelfCertainty, "_score_new", real)
    [resumed] = rescore(src, cfg)
    assert resumed.rundir.path == again and len(records(again)) == 3
    assert (
        json.loads((again / "run.json").read_text())["totals"]["prm_steps_scored"]
        == info["totals"]["prm_steps_scored"]
    )  # the first session's problem plus the second's two: each once
    for a, b in zip(new, records(again)):
        for ca, cb in zip(a["completions"], b["completions"]):
            assert cb["step_scores"] == pytest.approx(ca["step_scores"], rel=1e-4)

    # the analyzer reads source and derived runs side by side, paired on the same completions
    analysis = analyze([tmp_path / "sweep"], tmp_path / "analysis", Options(resamples=100))
    runs = analysis.collection.runs.set_index("run")
    assert set(runs.index) == {"src", job.rundir.path.name}
    assert runs.loc["src", "setting"] != runs.loc[job.rundir.path.name, "setting"]
    assert runs.loc[job.rundir.path.name, "scored_by"] == "self_certainty"
    cmp = analysis.prm_comparisons
    assert set(cmp["a_scored_by"]) == {"self_certainty"}
    assert set(cmp["b_scored_by"]) == {"equation_checker"}
    assert (cmp[cmp["method"] == "pass"]["mean"] == 0).all()  # same samples, same pass@N


def test_rescoring_needs_nothing_of_a_generator_the_prm_does_not_read(tmp_path, engine):
    # runs made elsewhere with a hub model this machine never downloaded (offline here)
    src = source_run(tmp_path)
    cfg = yaml.safe_load((src / "config.yaml").read_text())
    cfg["model"]["path"] = "meta-llama/Llama-3.2-1B-Instruct"
    (src / "config.yaml").write_text(yaml.safe_dump(cfg))
    [job] = rescore(src, checker(wrong_score=0.25))  # a model-free PRM: nothing to load
    assert len(records(job.rundir.path)) == 20
    # a PRM that reads the generator needs it, and says so before anything loads
    with pytest.raises(ConfigError, match=re.escape("model.path=meta-llama/Llama-3.2-1B-Instruct")):
        rescore(src, RescoreConfig(prm=prm_config("self_certainty"), out_dir=str(tmp_path / "s")))
