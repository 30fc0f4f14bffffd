"""Offline compute nodes: what a sweep needs (`prefetch`), the check that an offline run has it,
and `python -m hotncold.doctor`.

No test here reaches the network (huggingface.co does not answer from these machines): the
Hugging Face cache is a folder laid out as huggingface_hub lays it out (tests/fake_hub.py), and
prefetch's downloader is replaced by one that writes into it what the hub would serve.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_module
from fake_hub import cached_repo
from test_gpu_plan import CONFIGS

import hotncold.engine.vllm_engine
from hotncold.cluster import prefetch
from hotncold.config import Config, ConfigError, DatasetConfig, ModelConfig
from hotncold.diagnostics import checks
from hotncold.engine import hf_cache
from hotncold.engine.hf_cache import Need
from hotncold.experiment.run import execute
from hotncold.prm.registry import prm_config

LLAMA, RLHFLOW, QWEN_PRM = (
    "meta-llama/Llama-3.2-1B-Instruct",
    "RLHFlow/Llama3.1-8B-PRM-Deepseek-Data",
    "Qwen/Qwen2.5-Math-PRM-7B",
)
MATH500 = "HuggingFaceH4/MATH-500"


def model_files(repo_id: str, shards: int = 2) -> dict:
    """What prefetch keeps of a model repository: configs, tokenizer, sharded safetensors."""
    names = [f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards)]
    return {
        "config.json": CONFIGS.get(repo_id, {"architectures": ["LlamaForCausalLM"]}),
        "tokenizer.json": "{}",
        "tokenizer_config.json": {"model_max_length": 131072},
        "model.safetensors.index.json": {"weight_map": {f"w{i}": n for i, n in enumerate(names)}},
        **{name: b"\0" * 8 for name in names},
    }


def repo_ids(needs):
    return [(n.repo_type, n.repo_id, n.why) for n in needs]


# --- the plan ---------------------------------------------------------------------------------


def test_the_study_needs_its_generator_prm_and_dataset_once_for_3900_jobs():
    configs = prefetch.job_configs(["experiment=hot_vs_cold"])
    assert len(configs) == 1  # seeds, temperatures, arms (approach and n) and shards load the same
    assert repo_ids(prefetch.needs_of(configs)) == [
        ("model", LLAMA, "model.path"),
        ("model", RLHFLOW, "prm.model_path"),
        ("dataset", MATH500, "dataset.path"),
    ]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            ["experiment=hot_vs_cold", "prm=rlhflow_8b,qwen_math_prm_7b", "dataset=math500,aime"],
            [LLAMA, RLHFLOW, MATH500, "AI-MO/aimo-validation-aime", QWEN_PRM],
        ),
        # the PRM reads the generator, or is served elsewhere: nothing of its own to fetch
        (["model=qwen2.5-1.5b-instruct", "prm=self_certainty"], ["Qwen/Qwen2.5-1.5B-Instruct"]),
        (
            ["model=llama-3.2-1b-instruct", "prm=rlhflow_8b", "prm.server_url=http://gpu:8088"],
            [LLAMA],
        ),
        (["dataset=amc"], ["AI-MO/aimo-validation-amc"]),  # the embedded model: nothing
        (
            ["model=acemath-7b-instruct,qwen2.5-3b-instruct", "dataset=gsm8k"],
            ["nvidia/AceMath-7B-Instruct", "openai/gsm8k", "Qwen/Qwen2.5-3B-Instruct"],
        ),
    ],
)
def test_a_sweep_needs_every_repository_any_of_its_jobs_loads(arguments, expected):
    needs = prefetch.needs_of(prefetch.job_configs(arguments))
    assert [n.repo_id for n in needs] == expected


def test_prefetch_keeps_the_weights_vllm_loads_and_nothing_else():
    llama = ["config.json", "model.safetensors", "original/consolidated.00.pth", "LICENSE.txt"]
    ignore = prefetch.model_patterns(llama)
    assert "*.bin" in ignore and "*.pt" in ignore and "original/*" in ignore
    assert "*.safetensors" not in ignore
    shepherd = ["config.json", "pytorch_model-00001-of-00002.bin", "tokenizer.model"]
    ignore = prefetch.model_patterns(shepherd)  # pickled weights only: those are loaded
    assert "*.bin" not in ignore and "*.pt" in ignore


# --- an offline run ---------------------------------------------------------------------------


def test_an_offline_run_missing_its_models_names_the_prefetch_command(tmp_path, hub_cache):
    overrides = ["model=llama-3.2-1b-instruct", "prm=rlhflow_8b"]
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        model=ModelConfig(path=LLAMA, max_tokens=2048, max_model_len=4096),
        dataset=DatasetConfig(per_level=1),
        overrides=overrides,
    )
    cfg.prm = prm_config("rlhflow_8b", model_path=RLHFLOW)
    with pytest.raises(ConfigError) as refused:
        execute(cfg)
    message = str(refused.value)
    assert message.startswith("HF_HUB_OFFLINE=1 and the Hugging Face cache lacks")
    assert f"model.path={LLAMA} (the repository)" in message
    assert f"prm.model_path={RLHFLOW} (the repository)" in message
    assert "`python -m hotncold.prefetch model=llama-3.2-1b-instruct prm=rlhflow_8b`" in message
    assert "\n" not in message and not (tmp_path / "run").exists()


def test_a_complete_snapshot_passes_and_a_missing_shard_is_named(hub_cache):
    need = Need(RLHFLOW, "model", "prm.model_path")
    snapshot = cached_repo(hub_cache, RLHFLOW, model_files(RLHFLOW))
    assert hf_cache.missing(need) == []
    hf_cache.check_cached([need], "python -m hotncold.prefetch prm=rlhflow_8b")
    (snapshot / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"weight shards model-00002-of-00002\.safetensors"):
        hf_cache.check_cached([need], "python -m hotncold.prefetch prm=rlhflow_8b")
    (snapshot / "tokenizer.json").unlink()
    (snapshot / "tokenizer_config.json").unlink()
    assert hf_cache.missing(need) == [
        "its tokenizer",
        "weight shards model-00002-of-00002.safetensors",
    ]


def test_online_nothing_is_checked_and_offline_a_cached_run_starts(
    tmp_path, hub_cache, monkeypatch
):
    need = Need(LLAMA, "model", "model.path")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    hf_cache.check_cached([need], "unused")  # online: whatever is missing downloads at load
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached_repo(hub_cache, LLAMA, model_files(LLAMA, shards=1))
    loaded = []

    class Loaded(Exception):
        pass

    def get_engine(model):
        loaded.append(model)
        raise Loaded

    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", get_engine)
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        model=ModelConfig(path=LLAMA, max_tokens=2048, max_model_len=8192),
        dataset=DatasetConfig(per_level=1),
    )
    with pytest.raises(Loaded):
        execute(cfg)
    # read from the cached config.json: Llama-3.2's 131072 positions allow 8192
    assert [m.path for m in loaded] == [LLAMA] and loaded[0].max_model_len == 8192


# --- prefetch, end to end with a stand-in downloader -----------------------------------------


@pytest.fixture
def online_cache(hub_cache, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return hub_cache


def test_prefetch_fetches_each_repository_once_then_checks_the_declared_card(
    online_cache, capsys, monkeypatch
):
    fetched = []

    def download(need):  # what snapshot_download would leave in the cache
        fetched.append(need.repo_id)
        if need.repo_type == "dataset":
            files = {"test.jsonl": json.dumps({"problem": "1+1?", "answer": "2"}) + "\n"}
        else:
            files = model_files(need.repo_id)
        return str(cached_repo(online_cache, need.repo_id, files, need.repo_type))

    arguments = ["experiment=hot_vs_cold", "cluster=slurm_a100", "prm=rlhflow_8b,qwen_math_prm_7b"]
    assert prefetch.main(arguments, downloader=download) == 0
    out = capsys.readouterr().out
    assert fetched == [LLAMA, RLHFLOW, MATH500, QWEN_PRM]  # each once
    assert "2 distinct job config(s) need 4 repositories" in out
    assert f"fits: {LLAMA} + prm=rlhflow_8b on a 40 GiB card: generator 0.1" in out
    assert f"fits: {LLAMA} + prm=qwen_math_prm_7b on a 40 GiB card" in out
    assert "done: jobs can run with HF_HUB_OFFLINE=1" in out
    # now offline, the same jobs find everything
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for cfg in prefetch.job_configs(arguments):
        hf_cache.check_cached(prefetch.needs_of([cfg]), "unused")


def test_prefetch_reports_failures_and_cards_too_small(online_cache, capsys):
    def download(need):
        if need.repo_id == RLHFLOW:
            raise RuntimeError("401 Client Error: gated repository\nmore detail")
        return str(cached_repo(online_cache, need.repo_id, model_files(need.repo_id)))

    arguments = ["model=llama-3.2-1b-instruct", "prm=rlhflow_8b", "cluster=slurm"]
    arguments += ["cluster.gpu_memory_gib=16"]
    assert prefetch.main(arguments, downloader=download) == 1
    out = capsys.readouterr().out
    assert f"{RLHFLOW}" in out and "FAILED  401 Client Error: gated repository" in out
    assert "unknown size" in out  # the PRM's config.json never arrived: not sized
    cached_repo(online_cache, RLHFLOW, model_files(RLHFLOW))
    assert prefetch.main(arguments, downloader=lambda need: "cached") == 1
    assert "does not fit: meta-llama/Llama-3.2-1B-Instruct + prm=rlhflow_8b on a 16 GiB card" in (
        capsys.readouterr().out
    )


def test_prefetch_refuses_to_run_offline(hub_cache, capsys):
    assert prefetch.main(["dataset=amc"], downloader=pytest.fail) == 2
    assert "HF_HUB_OFFLINE is set here" in capsys.readouterr().out


# --- the doctor -------------------------------------------------------------------------------


def test_doctor_memory_check_on_the_declared_card(hub_cache):
    for repo in (LLAMA, RLHFLOW):
        cached_repo(hub_cache, repo, model_files(repo))
    cfg = Config(model=ModelConfig(path=LLAMA, max_tokens=2048, max_model_len=4096))
    cfg.prm = prm_config("rlhflow_8b", model_path=RLHFLOW)
    cfg.cluster.name, cfg.cluster.gpu_memory_gib = "slurm_a100", 40
    [fit] = checks.memory_checks(cfg)
    assert (
        fit.status == checks.PASS
        and "cluster=slurm_a100's 40 GiB card: generator 0.1" in fit.detail
    )
    cfg.cluster.gpu_memory_gib = 24
    [fit] = checks.memory_checks(cfg)
    assert fit.status == checks.FAIL and "the engines do not fit the 24.0 GiB GPU" in fit.detail
    hub = checks.hub_checks(cfg)
    assert [(c.name, c.status) for c in hub] == [
        (LLAMA, checks.PASS),
        (RLHFLOW, checks.PASS),
        ("login", checks.SKIP),  # offline: not asked
    ]


def test_doctor_memory_check_on_the_cpu_counts_a_kv_cache_sized_per_batch(hub_cache):
    """The generator's `cpu_kv_cache_gib` is null by default (sized per batch when the run
    starts): the check counts the least it takes, and does not fail on the missing number."""
    cached_repo(hub_cache, LLAMA, model_files(LLAMA))
    cfg = Config(model=ModelConfig(path=LLAMA, max_tokens=2048, max_model_len=4096))
    assert cfg.model.cpu_kv_cache_gib is None and cfg.cluster.gpu_memory_gib is None
    [fit] = checks.memory_checks(cfg)
    assert fit.status == checks.PASS, fit.detail
    assert "1 engine(s) need about" in fit.detail and "sized per batch" in fit.detail
    cfg.model.cpu_kv_cache_gib = 2.0
    [fixed] = checks.memory_checks(cfg)
    assert fixed.status == checks.PASS and "sized per batch" not in fixed.detail


def test_doctor_fails_offline_when_the_config_needs_what_is_not_cached(tmp_path):
    env_cache = tmp_path / "empty-hf"
    proc = run_module(
        "hotncold.doctor",
        "--no-smoke",
        "model=llama-3.2-1b-instruct",
        "prm=rlhflow_8b",
        env={"HF_HOME": str(env_cache), "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(
        line.startswith("[FAIL] hub") and LLAMA in line and "python -m hotncold.prefetch" in line
        for line in lines
    ), proc.stdout
    assert "[  ok] platform vllm" in proc.stdout
    assert lines[-1].startswith("doctor: ") and "(smoke run not asked: --no-smoke)" in lines[-1]


@pytest.mark.slow
def test_doctor_passes_on_this_machine_with_every_engine_path():
    proc = run_module("hotncold.doctor", timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for name in ("generation", "generative PRM", "prompt logprobs", "pooling PRM"):
        assert any(line.startswith(f"[  ok] smoke    {name}") for line in proc.stdout.splitlines())
    assert "warm cache = cold" in proc.stdout
    assert proc.stdout.splitlines()[-1].endswith(" 0 failed, 0 skipped")
