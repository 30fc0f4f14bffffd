"""Experiment presets: every job of a declared sweep composes and validates, without running."""

from __future__ import annotations

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import hotncold.config.hydra  # noqa: F401  (registers the schema and resolvers)
from hotncold.cluster import hydra_private
from hotncold.cluster.sweep import hydra_app
from hotncold.cluster.sweep_grids import sweeper_jobs
from hotncold.experiment.run import to_config
from hotncold.experiment.validate import validate

CONF = ROOT / "hotncold" / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
PLAIN = ["out_dir=/tmp/hotncold-test", "overrides=[]"]


def compose_job(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[*PLAIN, *overrides], return_hydra_config=True)


def sweep_jobs(preset: str) -> list[list[str]]:
    """The overrides of every job the preset's sweep launches, expanded as its sweeper (Hydra's
    basic one, or hotncold's union sweeper) expands `hydra.sweeper` (the Slurm launcher takes
    the same job list)."""
    with hydra_app("hotncold") as hydra:
        config = hydra_private.compose_multirun(hydra, "config", [f"experiment={preset}"])
        return sweeper_jobs(hydra.config_loader, config.hydra.sweeper, [])


def checked(preset: str, job: list[str]):
    composed = compose_job(f"experiment={preset}", *job)
    cfg = to_config(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
    validate(cfg)
    return composed, cfg


def test_presets_exist():
    assert {"hot_vs_cold", "hot_vs_cold_cpu"} <= set(PRESETS)


def test_cpu_preset_composes_every_job():
    jobs = sweep_jobs("hot_vs_cold_cpu")
    # approaches x temperatures x seeds, then adaptive Best-of-N on the mix x seeds
    assert len(jobs) == 4 * 3 * 2 + 1 * 1 * 2
    names = set()
    temperatures = set()
    approaches = set()
    for job in jobs:
        composed, cfg = checked("hot_vs_cold_cpu", job)
        assert cfg.model.path == "embedded:smollm2_135m"  # nothing to download
        assert cfg.prm.name == "equation_checker" and cfg.dataset.name == "arithmetic"
        assert cfg.n == 8 and sorted(cfg.dataset.levels) == [1, 2, 3, 4, 5]
        assert composed.hydra.launcher._target_.endswith("BasicLauncher")
        assert composed.hydra.sweep.dir == "multirun/hot_vs_cold_cpu"
        names.add(composed.run_name)
        temperatures.add(tuple(cfg.temperature.values))
        approaches.add(cfg.approach.name)
        if cfg.approach.name in ("beam_search", "dvts", "particle_filter"):
            assert cfg.approach.num_iterations == 6  # the preset's short solutions
        if cfg.approach.name == "adaptive_bon":
            assert len(cfg.temperature.values) > 1  # a ladder to choose among
    assert len(names) == len(jobs)  # no two jobs share a run directory
    assert len(temperatures) == 3 and any(len(t) > 1 for t in temperatures)
    assert approaches == {"best_of_n", "beam_search", "dvts", "particle_filter", "adaptive_bon"}


def test_full_preset_declares_the_study_and_every_axis_value_composes():
    jobs = sweep_jobs("hot_vs_cold")
    axes: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, value = override.split("=", 1)
            axes.setdefault(key, set()).add(value)
    temperatures = {f"[{v / 10:.1f}]" for v in range(1, 13)} | {"[0.4,0.8,1.2]"}
    assert axes["temperature.values"] == temperatures
    assert axes["seed"] == {str(s) for s in range(5)}
    arms = {arm: arm_of(arm) for arm in axes["arm"]}
    # search-and-learn's approaches, the largest budget 256
    assert {a for a, _ in arms.values()} == {"best_of_n", "beam_search", "dvts"}
    assert max(n for _, n in arms.values()) == 256
    assert len(jobs) == 13 * len(arms) * 5 * len(axes["dataset.shard"])
    # composing all 3,900 jobs takes minutes: compose one job per value of every axis (each
    # value paired with the hardest values of the others), which is where a bad value would fail
    hardest = {"arm": "sal_beam_search_n256", "temperature.values": "[0.4,0.8,1.2]"}
    names = set()
    for key, values in axes.items():
        for value in sorted(values):
            job = [f"{k}={hardest.get(k, sorted(v)[0])}" for k, v in axes.items() if k != key]
            composed, cfg = checked("hot_vs_cold", [*job, f"{key}={value}"])
            assert cfg.dataset.path == "HuggingFaceH4/MATH-500" and cfg.dataset.num_shards == 10
            assert cfg.prm.name == "rlhflow_8b" and cfg.cluster.name == "slurm"
            assert cfg.prompt.name == "sal" and cfg.prm.agg_strategy == "last"
            assert composed.hydra.launcher._target_.endswith("SlurmLauncher")
            assert gpu_requests(composed.hydra.launcher) == 1
            names.add(composed.run_name)
    assert len(names) == sum(len(v) for v in axes.values()) - (len(axes) - 1)


def arm_of(arm: str) -> tuple[str, int]:
    """The approach and budget an arm of a study composes to."""
    composed = compose_job("experiment=hot_vs_cold", f"arm={arm}")
    return str(composed.approach.name), int(composed.n)


def study_plan(preset: str) -> list[dict]:
    """Every generation job of a preset as what determines its samples: its approach, budget,
    temperatures, seed and shard (the preset fixes the rest for all jobs alike)."""
    arms: dict[str, tuple[str, int]] = {}
    out = []
    for job in sweep_jobs(preset):
        values = dict(o.split("=", 1) for o in job)
        arm = values.pop("arm")
        if arm not in arms:
            arms[arm] = arm_of(arm)
        approach, n = arms[arm]
        out.append({"approach": approach, "n": n, **values})
    return out


def test_the_study_generates_nothing_twice_and_says_what_that_saves():
    plan = study_plan("hot_vs_cold")
    # Best-of-N and DVTS read every smaller N from subsets of one run, so a second run of
    # theirs differing only in n would generate samples another job already produces; a beam
    # search of budget N is not a subset of a larger one, so each n is its own generation
    subsumed = {"best_of_n", "dvts"}
    samples = [
        tuple(sorted((k, v) for k, v in job.items() if k != "n" or job["approach"] not in subsumed))
        for job in plan
    ]
    assert len(set(samples)) == len(samples)
    largest = max(job["n"] for job in plan)
    assert {job["n"] for job in plan if job["approach"] in subsumed} == {largest}
    assert {job["n"] for job in plan if job["approach"] == "beam_search"} == {4, 16, 64, 256}
    # against every approach at every n (the 7,800-job grid this preset replaced): jobs, and
    # generated tokens at most, n samples of at most model.max_tokens per problem and job
    cfg = compose_job("experiment=hot_vs_cold")
    per_job = cfg.model.max_tokens * (500 // cfg.dataset.num_shards)  # MATH-500 in 10 shards
    ns = sorted({job["n"] for job in plan})
    others = len(plan) // len({(j["approach"], j["n"]) for j in plan})
    full_jobs = 3 * len(ns) * others
    full_tokens = 3 * sum(ns) * others * per_job
    tokens = sum(job["n"] for job in plan) * per_job
    assert (len(plan), full_jobs) == (3900, 7800)
    assert tokens / full_tokens == pytest.approx(852 / 1020)  # 16.5% fewer (README)
    assert (full_tokens, tokens) == (67_891_200_000, 56_709_120_000)  # README's figures


def gpu_requests(launcher) -> int:
    """GPUs one job asks for, read from the job script submitit would submit: the Slurm
    launcher's parameters mapped onto submitit's executor as hydra-submitit-launcher maps
    them (SlurmLauncher.launch), then its real `#SBATCH` lines."""
    import tempfile

    import submitit
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    target = launcher._target_
    if target.endswith("BasicLauncher"):
        return 0  # jobs run in this process: it has what it has
    params = instantiate(launcher).params
    if target.endswith("LocalLauncher"):
        return int(params.get("gpus_per_node") or 0)
    with tempfile.TemporaryDirectory() as folder:
        executor = submitit.AutoExecutor(cluster="slurm", folder=folder)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        skip = {"submitit_folder", "max_num_timeout"}
        executor.update_parameters(
            **{(k if k in base else f"slurm_{k}"): v for k, v in params.items() if k not in skip}
        )
        script = executor._executor._make_submission_file_text("python -m hotncold", "job")
    lines = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    count = 0
    for line in lines:
        flag, _, value = line.removeprefix("#SBATCH ").partition("=")
        if flag in ("--gpus-per-node", "--gpus", "--gpus-per-task"):
            count += int(value.rsplit(":", 1)[-1])
        elif flag == "--gres":
            count += sum(int(g.rsplit(":", 1)[-1]) for g in value.split(",") if g.startswith("gpu"))
    return count


CLUSTERS = sorted(p.stem for p in (CONF / "cluster").glob("*.yaml"))
GPUS_PER_JOB = {
    "slurm": 1,
    "slurm_a100": 1,
    "slurm_h100": 1,
    "slurm_local": 0,  # the one-node CPU cluster (tests/slurm_local.sh): no GPU to ask for
    "submitit_local": 0,  # this machine's processes: they see its GPUs, nothing is requested
    "local": 0,
}


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_the_study_asks_each_job_for_one_gpu_whatever_the_profile(cluster):
    from hydra.errors import ConfigCompositionException

    assert set(GPUS_PER_JOB) == set(CLUSTERS)  # a new profile states what it requests
    alone = compose_job(f"cluster={cluster}")
    assert gpu_requests(alone.hydra.launcher) == GPUS_PER_JOB[cluster]
    if cluster == "local":  # the preset's time limit is a submitit field: the basic
        with pytest.raises(ConfigCompositionException, match="timeout_min"):  # launcher has none
            compose_job("experiment=hot_vs_cold", f"cluster={cluster}")
        return
    composed = compose_job("experiment=hot_vs_cold", f"cluster={cluster}")
    assert gpu_requests(composed.hydra.launcher) == GPUS_PER_JOB[cluster]  # none added


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_typo_fails_before_anything_runs(preset):
    with pytest.raises(Exception, match="temprature"):
        compose_job(f"experiment={preset}", "temprature=hot")


def test_make_experiment_sweeps_then_analyses_the_same_folder(tmp_path):
    import subprocess

    dry = subprocess.run(
        ["make", "-n", "-o", "model", "experiment", f"SWEEP_DIR={tmp_path}", "ARGS=seed=3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    sweep, analyse = [x for x in dry.stdout.splitlines() if "python -m hotncold" in x]
    assert "-m hotncold -m experiment=hot_vs_cold_cpu" in sweep
    assert f"hydra.sweep.dir={tmp_path}" in sweep and sweep.endswith("seed=3")
    assert f"-m hotncold.analyze {tmp_path} --out {tmp_path}/analysis" in analyse


@pytest.mark.slow
def test_reduced_cpu_preset_runs_and_its_report_appears(real_engine, tmp_path):
    """The CPU preset on the real path (the session's engine), shrunk: 2 approaches x 2
    temperatures, 1 seed, 2 easy problems at n=4; then the analyzer's report on its sweep
    folder."""
    import json

    from conftest import run_module, sweep_in_process

    sweep = tmp_path / "sweep"
    args = ["experiment=hot_vs_cold_cpu", f"hydra.sweep.dir={sweep}"]
    args += ["approach=best_of_n,beam_search", "temperature=cold,multi", "seed=0"]
    args += ["dataset.per_level=1", "dataset.levels=[1,2]", "n=4", "model.max_tokens=48"]
    args += ["approach.num_iterations=3"]
    sweep_in_process(*args)
    runs = sorted(p.parent for p in sweep.glob("*/run.json"))
    assert len(runs) == 4
    for run in runs:
        assert json.loads((run / "run.json").read_text())["status"] == "finished"
    out = tmp_path / "report"
    proc = run_module("hotncold.analyze", str(sweep), "--out", str(out), "--bootstrap", "200")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = (out / "report.md").read_text()
    assert "beam_search" in text and "best_of_n" in text
    assert len(list((out / "figures").glob("*.png"))) >= 4
