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
from hotncold.prm.registry import prm_config
from hotncold.train_prm.config import TrainPRMConfig
from hotncold.train_prm.config import validate as validate_training

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
    if group == "approach" and option == "adaptive_bon":
        overrides.append("temperature=multi")  # it picks among temperature.values: a ladder
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
    (  # 0.5 and 1.5 tie: a rotation that hands the extra sample to 0.8 leaves 0.4 with none
        {
            "n": 5,
            "temperature__values": [0.4, 0.8, 1.2],
            "temperature__ratios": [0.1, 0.3, 0.6],
        },
        "temperature 0.4 (ratio 0.1) gets 0 of n=5 completions for some problems",
    ),
    ({"n": 0}, "at least 1"),
    ({"approach__name": "beam_search", "n": 10, "approach__beam_width": 4}, "not divisible"),
    (
        {
            "approach__name": "dvts",
            "approach__beam_width": 2,
            "temperature__values": [0.4, 0.8, 1.2],
        },
        "temperature 0.4 (ratio 0.333333) gets 0.667 of the approach.beam_width=2 expansions",
    ),
    (
        {
            "approach__name": "beam_search",
            "temperature__values": [0.4, 1.2],
            "temperature__ratios": [0.9, 0.1],
        },
        "temperature 1.2 (ratio 0.1) gets 0.4 of the approach.beam_width=4 expansions",
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
    ({"prompt__user_template": "solve it"}, "prompt.user_template must contain {problem}"),
    ({"model__family": "gpt2"}, "model.family='gpt2' is unknown"),
    ({"prompt__chat_templates": {"mistral": "{{ x }}"}}, "prompt.chat_templates has mistral"),
    ({"prompt__chat_templates": {"other": "{{ x }}"}}, "prompt.chat_templates has other"),
    ({"prompt__date_string": " "}, "prompt.date_string is empty"),
    (
        {"metrics__selection_temperatures": [0.1, 0.0]},
        "selection_temperatures must all be positive",
    ),
    ({"source_prm": {"name": "trl"}}, "source_prm is set only by python -m hotncold.rescore"),
]


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[m for _, m in BAD])
def test_validation_names_the_fix(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        validate(cfg_with(**changes))
    assert "\n" not in str(info.value)


# What Hydra receives when a delimiter is typed on the command line with backslash escapes.
ESCAPED = ["\\n\\n", "\\n", "Step:\\t", "\\r\\n", "\\nStep"]


@pytest.mark.parametrize("typed", ESCAPED)
def test_a_delimiter_typed_with_backslash_escapes_is_refused_with_the_way_to_pass_it(typed):
    composed = make(f'model.step_delimiter="{typed}"', "approach=beam_search")
    cfg = to_config(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
    assert cfg.model.step_delimiter == typed  # Hydra kept the backslashes
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert message.startswith(f'model.step_delimiter="{typed}" holds a literal backslash-n')
    assert f"$'model.step_delimiter=\"{typed}\"' in bash" in message and "\n" not in message


@pytest.mark.parametrize(
    "prm",
    [
        prm_config("trl", model_path="/m", step_separator="\\n"),
        prm_config("math_shepherd", step_separator="\\n"),
    ],
    ids=["trl", "math_shepherd"],
)
def test_a_prm_separator_with_backslash_escapes_is_refused(prm):
    cfg = Config(out_dir="/tmp/unused", prm=prm)
    with pytest.raises(ConfigError, match=re.escape('prm.step_separator="\\n" holds a literal')):
        validate(cfg)


def test_the_trainer_refuses_a_separator_with_backslash_escapes():
    cfg = TrainPRMConfig()
    cfg.train.step_separator = "\\n"
    with pytest.raises(ConfigError, match=re.escape('train.step_separator="\\n" holds')):
        validate_training(cfg)


@pytest.mark.parametrize("value", ["\n\n", "\n", " ки\n", "\\newline", "\\times", "<extra_0>"])
def test_real_newlines_and_latex_commands_are_accepted_as_delimiters(value):
    cfg = cfg_with(model__step_delimiter=value)
    cfg.prm = prm_config("trl", model_path="/m", step_separator=value)
    validate(cfg)


def test_cli_refuses_a_backslash_delimiter_before_anything_loads(tmp_path):
    proc = run_module(
        "hotncold", 'model.step_delimiter="\\n\\n"', f"hydra.run.dir={tmp_path}/run", timeout=120
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors == [
        'hotncold: error: model.step_delimiter="\\n\\n" holds a literal backslash-n (or -t, -r), '
        "not a newline: the command line does not unescape it; pass a real one, "
        '$\'model.step_delimiter="\\n\\n"\' in bash or "\\n\\n" in double quotes in a YAML file'
    ]
    assert not (tmp_path / "run" / "run.json").exists()


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


@pytest.mark.parametrize("bad", ["torn dataset file", "missing model folder"])
def test_cli_names_a_bad_file_in_one_line_before_anything_loads(bad, tmp_path):
    data = tmp_path / "problems.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answ')
    args, message = {
        "torn dataset file": (
            ["dataset=local", f"dataset.path={data}", "dataset.level_field=null"],
            f"dataset.path='{data}' line 2 is cut off",
        ),
        "missing model folder": (
            ["model.path=/nonexistent/model"],
            "model.path='/nonexistent/model': no such folder",
        ),
    }[bad]
    proc = run_module("hotncold", *args, f"hydra.run.dir={tmp_path}/run", timeout=120)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("hotncold: error: "), proc.stderr
    assert message in errors[0] and "Traceback" not in proc.stderr + proc.stdout
    assert "vLLM" not in proc.stdout + proc.stderr  # no engine started
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


# --- one schema per PRM kind (`hotncold.config.schemas`, issue 15 item 6) ---------------------

PRM_OPTIONS = sorted(p.stem for p in (CONF / "prm").glob("*.yaml"))
# What each option's settings hold beyond the ones every PRM shares, written out by hand (not
# read from the schemas under test): a field added to the wrong kind fails here.
SHARED = {"name", "agg_strategy", "server_url", "incremental", "batch_size"}
ENGINE = {
    "model_path",
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "cpu_kv_cache_gib",
    "block_size",
    "tensor_parallel_size",
    "trust_remote_code",
    "engine_kwargs",
}
OWN_SETTINGS = {
    "equation_checker": {"neutral_score", "correct_score", "wrong_score"},
    "self_certainty": set(),
    "judge": ENGINE | {"positive_token", "negative_token", "system_prompt", "judge_template"},
    "rlhflow_8b": ENGINE | {"positive_token", "negative_token"},
    "math_shepherd": ENGINE | {"positive_token", "negative_token", "step_separator"},
    "qwen_math_prm_7b": ENGINE | {"system_prompt"},
    "skywork_1.5b": ENGINE | {"step_separator"},
    "skywork_7b": ENGINE | {"step_separator"},
    "trl": ENGINE | {"step_separator"},
}


def test_every_prm_option_has_its_expected_settings():
    assert sorted(OWN_SETTINGS) == PRM_OPTIONS


@pytest.mark.parametrize("option", PRM_OPTIONS)
def test_a_prm_option_holds_only_the_settings_its_kind_reads(option):
    from hotncold.prm.registry import KINDS

    composed = make(f"prm={option}")
    assert set(composed.prm) == SHARED | OWN_SETTINGS[option]
    cfg = to_config(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
    assert type(cfg.prm) is KINDS[option].schema
    # a stored config.yaml (plain values, as a resumed run, merge or prefetch reads it) is
    # typed the same way
    stored = OmegaConf.to_container(composed, resolve=False)
    stored = {k: v for k, v in stored.items() if k != "hydra"}
    assert type(to_config(stored).prm) is KINDS[option].schema


@pytest.mark.parametrize(
    "overrides",
    [
        ["prm=equation_checker", "prm.model_path=/some/prm"],
        ["prm=self_certainty", "prm.dtype=float16"],
        ["prm=rlhflow_8b", "prm.neutral_score=0.2"],
        ["prm=qwen_math_prm_7b", "prm.positive_token=Yes"],
        ["prm=skywork_1.5b", "prm.judge_template=judge"],
    ],
    ids=lambda o: " ".join(o),
)
def test_a_setting_of_another_prm_kind_fails_at_composition(overrides):
    from hydra.errors import ConfigCompositionException

    key = overrides[1].split("=")[0]
    with pytest.raises(ConfigCompositionException, match=f"Could not override '{key}'"):
        make(*overrides)


def test_renaming_a_prm_option_to_another_kind_is_refused_in_one_line():
    composed = make("prm=rlhflow_8b", "prm.name=judge")
    cfg = to_config(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert str(info.value) == (
        "prm.name='judge' has GenerativePRMConfig's settings, not JudgePRMConfig's; choose the "
        "option with prm=judge instead of overriding prm.name"
    )


def test_a_stored_config_with_an_unknown_prm_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^prm\.name='nope' is unknown; use one of"):
        to_config({"prm": {"name": "nope"}})


def test_cfg_job_shows_only_the_settings_of_the_chosen_prm():
    shown = run_module("hotncold", "prm=equation_checker", "--cfg", "job", "--package", "prm")
    assert shown.returncode == 0, shown.stderr
    keys = {line.split(":")[0] for line in shown.stdout.splitlines() if line and line[0] != " "}
    keys.discard("# @package prm")
    assert keys == SHARED | OWN_SETTINGS["equation_checker"]
