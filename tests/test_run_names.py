"""Known run names, pinned byte for byte: a rename silently breaks resuming every earlier run.

A run resumes the directory named after its resolved config, so a change to how names or their
hash are computed (a moved field, a new default, a schema reordered) makes every rerun start
from scratch beside its old directory. These names must never change unless on purpose, in a
commit that says so.
They cover every approach, the temperature options (default, a multi-temperature mix, a ratio
mix, a linear and a switch schedule, greedy), a shard, a non-default model and PRM, an
experiment preset, search-and-learn's recipe and prompt, and the PRM trainer's runs.

Changed on purpose since, each time in a commit that says so: the prompt group (issue 12 item
6) moved the prompt out of `model`; results version 2 (`naming.RESULTS_VERSION`, issue 12)
entered the hash of every experiment run's name, since those runs compute different results for
the same config; the CPU KV cache size (`model.cpu_kv_cache_gib`, issue 16) left the hash of
every name, the trainer's too, since it changes speed, not results; Qwen2.5-Math-PRM's context
(issue 13) is its 4096 positions; one schema per PRM kind (issue 15) dropped the settings a kind
never read from every experiment config; adaptive_bon's probe no longer counts a sample without
an answer as disagreement by default (`approach.unanswered: ignore`, issue 17), so its default
runs were renamed, while `unanswered=distinct`, the old policy, keeps the old name; the study
presets turned the answer-aware stop on (`approach.answer_stop: true`, issue 18), which renamed
their runs (the "preset" and "sal_recipe" cases), while at its default, false, the field stays
out of the hash and no other name changed.
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import hotncold.config.hydra  # noqa: F401  (registers the schema and resolvers)
from hotncold.experiment.naming import run_name
from hotncold.experiment.run import to_config

CONF = ROOT / "hotncold" / "conf"
PLAIN = ["out_dir=/tmp/hotncold-test", "overrides=[]"]

KNOWN = {
    "default": (
        [],
        "best_of_n_T0.8_n8_seed0_smollm2_135m_equation_checker_arithmetic_bdd7420b",
    ),
    "beam_search_multi": (
        ["approach=beam_search", "temperature=multi", "n=12", "approach.beam_width=3"],
        "beam_search-m3_T0.4-0.8-1.2_n12_seed0_smollm2_135m_equation_checker_arithmetic_843a6e26",
    ),
    "dvts_ratio_mix": (
        [
            "approach=dvts",
            "temperature.values=[0.3,1.5]",
            "temperature.ratios=[0.75,0.25]",
            "n=16",
        ],
        "dvts-m4_T0.3-1.5_r0.75-0.25_n16_seed0_smollm2_135m_equation_checker_arithmetic_df727289",
    ),
    "dvts_anneal": (
        ["approach=dvts", "temperature=anneal", "n=16"],
        "dvts-m4_T1_lin1.2-0.4h8_n16_seed0_smollm2_135m_equation_checker_arithmetic_830635c1",
    ),
    "beam_search_switch": (
        ["approach=beam_search", "temperature=hot_then_cold", "temperature.switch_at=3"],
        "beam_search-m4_T1_sw1.2-0.4at3_n8_seed0_smollm2_135m_equation_checker_arithmetic_86217cb4",
    ),
    "greedy": (
        ["temperature=greedy", "n=4", "seed=3"],
        "best_of_n_T0_n4_seed3_smollm2_135m_equation_checker_arithmetic_b28d55a4",
    ),
    "shard": (
        ["dataset=math500", "dataset.num_shards=4", "dataset.shard=1", "temperature=hot", "n=64"],
        "best_of_n_T1.2_n64_seed0_smollm2_135m_equation_checker_math500-shard1of4_c3aa091d",
    ),
    "llama_with_qwen_prm": (
        [
            "model=llama-3.2-1b-instruct",
            "prm=qwen_math_prm_7b",
            "prm.agg_strategy=min",
            "approach=beam_search",
        ],
        "beam_search-m4_T0.8_n8_seed0_llama-3.2-1b-instruct_qwen_math_prm_7b_arithmetic_b22e6a33",
    ),
    "preset": (
        ["experiment=hot_vs_cold_cpu", "approach=dvts", "temperature=multi", "seed=1"],
        "dvts-m4_T0.4-0.8-1.2_n8_seed1_smollm2_135m_equation_checker_arithmetic_d1f7808d",
    ),
    "sal_recipe": (
        [
            "experiment=hot_vs_cold",
            "approach=sal_beam_search",
            "temperature.values=[0.8]",
            "n=16",
            "dataset.shard=3",
        ],
        "beam_search-m4_T0.8_n16_seed0_llama-3.2-1b-instruct_rlhflow_8b_math500-shard3of10_db695a7d",
    ),
    "sal_prompt": (
        ["prompt=sal", "model=qwen2.5-1.5b-instruct", "approach=dvts", "n=16"],
        "dvts-m4_T0.8_n16_seed0_qwen2.5-1.5b-instruct_equation_checker_arithmetic_921c763f",
    ),
    "particle_filter": (
        ["approach=particle_filter", "approach.resampling.tau=0.5", "n=16"],
        "particle_filter-tau0.5_T0.8_n16_seed0_smollm2_135m_equation_checker_arithmetic_e7c4421a",
    ),
    "adaptive_bon": (
        ["approach=adaptive_bon", "temperature=multi"],
        "adaptive_bon-majority-p0.25_T0.4-0.8-1.2_n8_seed0_smollm2_135m_equation_checker_arithmetic_faeca642",
    ),
    "adaptive_bon_distinct": (  # the probe policy before `approach.unanswered`: its old name
        ["approach=adaptive_bon", "temperature=multi", "approach.unanswered=distinct"],
        "adaptive_bon-majority-p0.25_T0.4-0.8-1.2_n8_seed0_smollm2_135m_equation_checker_arithmetic_d2e589c6",
    ),
}
SWEEP_DIRS = {"preset": "multirun/hot_vs_cold_cpu", "sal_recipe": "multirun/hot_vs_cold"}

KNOWN_TRAINING = {
    "default": ([], "arithmetic_smollm2_135m_seed0_4abba35f"),
    "math_shepherd": (
        ["train=math_shepherd", "seed=2"],
        "math_shepherd_Qwen2.5-Math-1.5B_seed2_4cff8561",
    ),
}


def composed(config_name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name, overrides=[*PLAIN, *overrides], return_hydra_config=True)


@pytest.mark.parametrize("case", list(KNOWN))
def test_known_run_names_and_directories_never_change(case):
    overrides, name = KNOWN[case]
    cfg = composed("config", overrides)
    assert cfg.run_name == name
    assert cfg.hydra.run.dir == f"outputs/{name}"
    assert cfg.hydra.sweep.dir == SWEEP_DIRS.get(case, "multirun/default")
    assert cfg.hydra.sweep.subdir == name


@pytest.mark.parametrize("case", list(KNOWN))
def test_a_config_built_without_hydra_gets_the_same_name(case):
    """`hotncold.merge` and library callers name runs from a typed Config, not through Hydra."""
    overrides, name = KNOWN[case]
    cfg = composed("config", overrides)
    typed = to_config(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
    assert run_name(dataclasses.asdict(typed)) == name


@pytest.mark.parametrize("case", list(KNOWN_TRAINING))
def test_known_training_run_names_never_change(case):
    overrides, name = KNOWN_TRAINING[case]
    cfg = composed("train_prm", overrides)
    assert cfg.run_name == name
    assert cfg.hydra.run.dir == f"outputs/train_prm/{name}"


@pytest.mark.parametrize(
    "overrides",
    [
        ["approach.open_batches=1"],
        ["approach.open_batches=8", "batch_size=4"],
        ["approach.scheduler=barrier"],
    ],
)
def test_how_a_step_search_shares_the_engine_is_not_part_of_its_name(overrides):
    """`approach.scheduler`, `approach.open_batches` and `batch_size` write the same records:
    composed from the command line, they keep the pinned name (and reach the typed config)."""
    base, name = KNOWN["beam_search_multi"]
    cfg = composed("config", [*base, *overrides])
    assert cfg.run_name == name
    typed = to_config(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
    for override in overrides:
        key, value = override.split("=")
        where = typed.approach if key.startswith("approach.") else typed
        assert str(getattr(where, key.removeprefix("approach."))) == value
