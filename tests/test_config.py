"""Every option of every config group composes, types check, and bad input fails clearly."""

from __future__ import annotations

import dataclasses
import re

import pytest
from conftest import ROOT, run_module
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import hotncold.config.hydra  # noqa: F401  (registers the schema and resolvers)
from hotncold.config import Config, ConfigError
from hotncold.experiment.run import execute, to_config
from hotncold.experiment.validate import validate

CONF = ROOT / "hotncold" / "conf"
GROUPS = ["model", "prm", "approach", "temperature", "dataset", "cluster"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
PLAIN = ["out_dir=/tmp/hotncold-test", "overrides=[]"]


def make(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[*PLAIN, *overrides], return_hydra_config=True)


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_into_the_typed_schema(group, option):
    overrides = [f"{group}={option}"]
    if group == "temperature" and "schedule:" in (CONF / group / f"{option}.yaml").read_text():
        overrides.append("approach=dvts")  # per-step schedules need a step-level approach
    composed = make(*overrides)
    cfg = to_config(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
    assert isinstance(cfg, Config)
    group_cfg = getattr(cfg, group)
    assert dataclasses.is_dataclass(group_cfg)
    if group == "dataset" and option == "local":
        with pytest.raises(ConfigError, match=r"needs dataset\.path"):
            validate(cfg)
    elif group == "prm" and option == "trl":
        with pytest.raises(ConfigError, match=r"needs prm\.model_path"):
            validate(cfg)
    else:
        validate(cfg)
    # the run directory is named from the resolved config
    assert composed.hydra.run.dir == f"outputs/{composed.run_name}"


@pytest.mark.parametrize("group", [g for g in GROUPS if g != "cluster"])
def test_options_of_a_group_get_distinct_run_names(group):
    names = {}
    for g, option in OPTIONS:
        if g == group:
            names[option] = make(f"{group}={option}").run_name
    assert len(set(names.values())) == len(names), names


def test_defaults_are_the_cpu_experiment():
    cfg = make()
    assert cfg.model.name == "smollm2_135m" and cfg.model.path == "embedded:smollm2_135m"
    assert cfg.dataset.source == "arithmetic"
    assert cfg.approach.name == "best_of_n"
    assert cfg.prm.name == "equation_checker"
    assert list(cfg.temperature["values"]) == [0.8]
    assert cfg.run_name.startswith(
        "best_of_n_T0.8_n8_seed0_smollm2_135m_equation_checker_arithmetic_"
    )


def test_run_name_tracks_values_not_the_option_label():
    assert "_T1.5_" in make("temperature=cold", "temperature.values=[1.5]").run_name
    assert "_T0.4-0.8-1.2_" in make("temperature=multi").run_name
    ratios = make("temperature=multi", "temperature.ratios=[0.5,0.25,0.25]").run_name
    assert "_T0.4-0.8-1.2_r0.5-0.25-0.25_" in ratios
    # per-step schedules are in the name too
    assert "_T1_lin1.2-0.4h8_" in make("temperature=anneal", "approach=dvts").run_name
    assert "_T1_sw1.2-0.4at2_" in make("temperature=hot_then_cold", "approach=dvts").run_name
    shorter = make("temperature=anneal", "approach=dvts", "temperature.horizon=4").run_name
    assert "_T1_lin1.2-0.4h4_" in shorter
    assert make("approach=dvts").run_name.startswith("dvts-m4_T0.8_n8_")
    # a field outside the readable part still changes the name (through the hash)
    assert make("model.max_tokens=64").run_name != make().run_name
    # where a run executes does not
    assert make("batch_size=3").run_name == make().run_name


def test_typos_fail_at_composition():
    from hydra.errors import ConfigCompositionException, MissingConfigException

    bad_key = r"Could not override 'approach\.bem_width'"
    with pytest.raises(ConfigCompositionException, match=bad_key):
        make("approach.bem_width=4")
    with pytest.raises(MissingConfigException, match="Could not find 'approach/best_of_m'"):
        make("approach=best_of_m")
    with pytest.raises(ConfigCompositionException, match="Error merging override n=lots") as e:
        make("n=lots")
    # the schema's type check is what refused it: an int field, not some other failure
    assert str(e.value.__cause__).startswith(
        "Value 'lots' of type 'str' could not be converted to Integer\n    full_key: n\n"
    )


def cfg_with(**changes) -> Config:
    cfg = Config(out_dir="/tmp/unused")
    for path, value in changes.items():
        target = cfg
        *parents, leaf = path.split("__")
        for p in parents:
            target = getattr(target, p)
        setattr(target, leaf, value)
    return cfg


BAD = [
    ({"n": 2, "temperature__values": [0.4, 0.8, 1.2]}, "smaller than the 3 temperatures"),
    ({"temperature__values": [0.4, 0.8], "temperature__ratios": [0.5, 0.6]}, "sum to 1.1"),
    ({"temperature__values": [0.4, 0.8], "temperature__ratios": [1.0]}, "one ratio per value"),
    ({"temperature__values": [-0.1]}, "must be >= 0"),
    ({"temperature__values": []}, "is empty"),
    ({"temperature__values": [0.4, 0.4]}, "repeats"),
    (
        {"n": 4, "temperature__values": [0.4, 1.2], "temperature__ratios": [0.95, 0.05]},
        "gets 0 of n=4",
    ),
    ({"n": 0}, "at least 1"),
    ({"approach__name": "beam_search", "n": 10, "approach__beam_width": 4}, "not divisible"),
    (
        {
            "approach__name": "dvts",
            "approach__beam_width": 2,
            "temperature__values": [0.4, 0.8, 1.2],
        },
        "temperature 1.2 (ratio 0.333333) gets 0 of the approach.beam_width=2 expansions",
    ),
    (
        {
            "approach__name": "beam_search",
            "temperature__values": [0.4, 1.2],
            "temperature__ratios": [0.9, 0.1],
        },
        "temperature 1.2 (ratio 0.1) gets 0 of the approach.beam_width=4",
    ),
    ({"temperature__schedule": "linear"}, "but best_of_n samples whole solutions"),
    ({"temperature__schedule": "exponential"}, "temperature.schedule='exponential' is unknown"),
    ({"temperature__start": 1.5}, "have no effect with temperature.schedule=constant"),
    (
        {"approach__name": "dvts", "temperature__schedule": "cosine", "temperature__end": -1.0},
        "temperature.end=-1.0 must be a factor >= 0",
    ),
    (
        {"approach__name": "dvts", "temperature__schedule": "linear", "temperature__horizon": 0},
        "temperature.horizon=0 must be at least 1",
    ),
    (
        {"approach__name": "dvts", "temperature__schedule": "switch", "temperature__switch_at": 0},
        "temperature.switch_at=0 must be at least 1",
    ),
    ({"prm__agg_strategy": "max"}, "agg_strategy"),
    ({"prm__name": "oracle"}, "prm.name"),
    ({"dataset__source": "hub"}, "needs dataset.path"),
    ({"dataset__shard": 3, "dataset__num_shards": 2}, "outside 0..1"),
    ({"dataset__limit": 0}, "selects nothing"),
    ({"model__max_tokens": 2000, "model__max_model_len": 1024}, "no room for the prompt"),
    ({"model__user_template": "solve it"}, "{problem}"),
]


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[m for _, m in BAD])
def test_validation_names_the_fix(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        validate(cfg_with(**changes))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dataset__levels": [9]}, "selects no problems"),
        ({"dataset__start": 1000}, "selects no problems"),
        ({"dataset__problem_field": "question"}, "no column 'question'"),
        ({"dataset__source": "file", "dataset__path": "/nonexistent.jsonl"}, "does not exist"),
    ],
)
def test_dataset_problems_fail_before_any_model_loads(changes, message, tmp_path, monkeypatch):
    import hotncold.engine.vllm_engine

    def no_engine(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", no_engine)
    cfg = cfg_with(**changes)
    cfg.out_dir = str(tmp_path / "run")
    with pytest.raises(ConfigError, match=message):
        execute(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["temperature=multi", "temperature.ratios=[0.5,0.3,0.3]"], "sum to 1.1"),
        (["n=2", "temperature=multi"], "smaller than the 3 temperatures"),
        (["dataset.levels=[7]"], "selects no problems"),
    ],
)
def test_cli_prints_one_line_and_exits_nonzero(args, message, tmp_path):
    proc = run_module("hotncold", *args, f"hydra.run.dir={tmp_path}/run", timeout=120)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors[-1].startswith("hotncold: error:") and message in errors[-1], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "run.json").exists()


def test_cli_help_lists_the_groups():
    proc = run_module("hotncold", "--help", timeout=120)
    assert proc.returncode == 0
    for group in GROUPS:
        assert f"{group}:" in proc.stdout
    assert "python -m hotncold -m" in proc.stdout


SLURM_PROFILES = [o for g, o in OPTIONS if g == "cluster" and o.startswith("slurm")]


@pytest.mark.parametrize("option", SLURM_PROFILES)
def test_slurm_profiles_are_typed_submitit_slurm_launchers(option):
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

    composed = make(f"cluster={option}")
    launcher = composed.hydra.launcher
    assert OmegaConf.get_type(launcher) is SlurmQueueConf
    assert launcher._target_.endswith("SlurmLauncher")
    # submitit's files stay in the sweep folder, where hotncold.status reads them
    assert launcher.submitit_folder == f"{composed.hydra.sweep.dir}/.submitit/%j"
    assert launcher.max_num_timeout > 0  # time-outs are requeued (runs resume)


def test_cluster_options_choose_their_launchers():
    launcher = make("cluster=slurm_local").hydra.launcher
    assert (launcher.partition, launcher.gpus_per_node) == ("debug", None)
    assert make("cluster=slurm_a100").hydra.launcher.gres == "gpu:a100:1"
    assert make("cluster=slurm_h100").hydra.launcher.gres == "gpu:h100:1"
    assert make("cluster=submitit_local").hydra.launcher._target_.endswith("LocalLauncher")
    assert make("cluster=local").hydra.launcher._target_.endswith("BasicLauncher")
    site = make(
        "cluster=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.account=lab",
        "hydra.launcher.qos=high",
        "hydra.launcher.gpus_per_node=2",
        "hydra.launcher.cpus_per_task=16",
        "hydra.launcher.mem_gb=128",
        "hydra.launcher.timeout_min=600",
        "hydra.launcher.array_parallelism=8",
        "hydra.launcher.setup=[module load cuda,source .venv/bin/activate]",
    ).hydra.launcher
    assert (site.partition, site.account, site.qos, site.gpus_per_node) == ("gpu", "lab", "high", 2)
    assert (site.cpus_per_task, site.mem_gb, site.timeout_min, site.array_parallelism) == (
        16,
        128,
        600,
        8,
    )
    assert list(site.setup) == ["module load cuda", "source .venv/bin/activate"]
    # where a job runs does not change what it computes
    assert make("cluster=slurm_a100").run_name == make().run_name


def test_launcher_typos_fail_at_composition():
    with pytest.raises(Exception, match=r"Could not override 'hydra\.launcher\.partitoin'") as info:
        make("cluster=slurm", "hydra.launcher.partitoin=debug")
    assert "Key 'partitoin' not in 'SlurmQueueConf'" in str(info.value.__cause__)
    with pytest.raises(Exception, match="gpus_per_node"):
        make("cluster=slurm_a100", "hydra.launcher.gpus_per_node=two")


def test_cli_launcher_typo_fails_before_anything_is_queued(tmp_path):
    proc = run_module(
        "hotncold",
        "-m",
        "cluster=slurm",
        "hydra.launcher.partitoin=debug",
        "seed=0,1",
        f"hydra.sweep.dir={tmp_path}/sweep",
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Key 'partitoin' not in 'SlurmQueueConf'" in proc.stderr
    assert not (tmp_path / "sweep").exists()  # no sweep folder, no job script, no sbatch
