"""The CPU engine's KV cache is sized from the batch, within what the machine has; engines are
reused when their cache is big enough, restarted once when it is not, and replaced when their
engine core died."""

from __future__ import annotations

import dataclasses
import os
import signal
from typing import ClassVar

import psutil
import pytest
from conftest import tiny_model_config

import hotncold.engine.vllm_engine as vllm_engine
from hotncold.config import EquationCheckerConfig, ModelConfig, PromptConfig
from hotncold.engine import kv_cache
from hotncold.engine.embedded import prepare
from hotncold.engine.kv_cache import GIB, Batch
from hotncold.engine.model_facts import kv_bytes_per_token, read_config
from hotncold.prm.registry import cpu_bytes_beside, prm_config, sized_for_batch

SMOLLM2_FP32 = 46_080
"""KV bytes per token of SmolLM2-135M in float32: 2 x 30 layers x 3 KV heads x 64 x 4 bytes."""
PLENTY = 20 * GIB


def test_kv_bytes_per_token_of_the_embedded_model():
    config = read_config(prepare())
    assert kv_bytes_per_token(config, "float32") == SMOLLM2_FP32
    assert kv_bytes_per_token(config, "bfloat16") == SMOLLM2_FP32 // 2
    assert kv_bytes_per_token({"architectures": ["GPT2LMHeadModel"]}, "float32") is None


def test_a_batch_needs_one_shared_prompt_and_n_samples_per_problem():
    batch = Batch(problems=20, n=8, prompt_tokens=224)
    # each sample: max_tokens plus at most one partly used block; the prompt once per problem
    assert kv_cache.batch_tokens(batch, max_tokens=128, block=128) == 20 * (224 + 8 * 256)


def test_a_window_of_open_problems_holds_a_prompt_for_each_of_them():
    # a windowed step search: the batch's samples in flight, over up to 80 open problems
    batch = Batch(problems=20, n=8, prompt_tokens=224, open_problems=80)
    assert kv_cache.batch_tokens(batch, max_tokens=128, block=128) == 80 * 224 + 20 * 8 * 256
    one_batch = dataclasses.replace(batch, open_problems=None)
    assert kv_cache.batch_tokens(one_batch, max_tokens=128, block=128) == 20 * (224 + 8 * 256)


def test_the_default_run_batch_gets_the_cache_it_needs_where_memory_allows():
    batch = Batch(problems=32, n=8, prompt_tokens=224)  # the defaults: batch_size 32, n=8
    chosen = kv_cache.plan(batch, 256, SMOLLM2_FP32, available=PLENTY, engine_bytes=3 * GIB)
    need = 32 * (224 + 8 * (256 + kv_cache.BLOCK_TOKENS_CPU)) * SMOLLM2_FP32
    assert chosen.need_bytes == need
    assert chosen.gib == 3.5 and chosen.gib * GIB >= need > (chosen.gib - 0.5) * GIB
    assert not chosen.capped


def test_the_cpu_engine_gets_32_token_blocks_unless_engine_kwargs_say_otherwise(monkeypatch):
    """vLLM's CPU default (128) would leave up to 127 cached prompt tokens to compute again per
    request; 32 is the smallest block its attention takes. An engine_kwargs block size wins
    (it is applied after the CPU settings)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(kv_cache, "available_bytes", lambda: PLENTY)
    model = dataclasses.replace(tiny_model_config(ModelConfig), cpu_kv_cache_gib=1.0)
    kwargs = vllm_engine._configure_cpu(model)
    assert kwargs["block_size"] == kv_cache.BLOCK_TOKENS_CPU == 32
    assert kwargs["kv_cache_memory_bytes"] == GIB
    _, plan = vllm_engine.sized_for(
        dataclasses.replace(model, cpu_kv_cache_gib=None, engine_kwargs={"block_size": 64}),
        Batch(4, 8, 224),
    )
    assert plan is not None
    assert plan.need_bytes == 4 * (224 + 8 * (model.max_tokens + 64)) * SMOLLM2_FP32


def test_a_small_batch_keeps_the_one_gib_default():
    chosen = kv_cache.plan(Batch(2, 4, 100), 96, SMOLLM2_FP32, PLENTY, engine_bytes=3 * GIB)
    assert chosen.gib == kv_cache.DEFAULT_GIB and not chosen.capped


def test_the_cache_takes_at_most_half_of_what_is_left_after_the_os_engine_and_prm():
    batch = Batch(problems=32, n=8, prompt_tokens=224)
    # 10 GiB available: 1 for the OS, 3 for this engine, 2 for a PRM engine: 4 left, half is 2
    chosen = kv_cache.plan(
        batch, 256, SMOLLM2_FP32, 10 * GIB, engine_bytes=3 * GIB, beside_bytes=2 * GIB
    )
    assert chosen.gib == 2.0 and chosen.cap_bytes == 2 * GIB and chosen.capped
    alone = kv_cache.plan(batch, 256, SMOLLM2_FP32, 10 * GIB, engine_bytes=3 * GIB)
    assert alone.gib == 3.0  # without the PRM engine: (10 - 1 - 3) / 2


def test_a_machine_with_almost_nothing_left_still_gets_a_minimal_cache():
    chosen = kv_cache.plan(Batch(32, 8, 224), 256, SMOLLM2_FP32, 2 * GIB, engine_bytes=3 * GIB)
    assert chosen.gib == kv_cache.STEP_GIB and chosen.capped


def test_the_prompt_estimate_errs_on_the_side_of_room():
    from transformers import AutoTokenizer

    prompt = PromptConfig()
    problems = ["What is 12 + 30 * 4?", "A farmer has 17 sheep and buys 25 more. How many? " * 3]
    tokenizer = AutoTokenizer.from_pretrained(prepare())
    chats = [
        [{"role": "system", "content": prompt.system_prompt}, {"role": "user", "content": p}]
        for p in problems
    ]
    texts = [
        tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats
    ]
    real = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    estimate = kv_cache.prompt_tokens_bound(prompt, problems)
    assert real < estimate < 2 * real


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setattr(vllm_engine, "on_cpu", lambda: True)
    monkeypatch.setattr(kv_cache, "available_bytes", lambda: PLENTY)


def test_an_unset_cache_is_sized_for_the_run_batch_and_a_set_one_is_kept(on_cpu):
    model = tiny_model_config(ModelConfig)
    assert model.cpu_kv_cache_gib is None
    batch = Batch(problems=32, n=8, prompt_tokens=224)
    sized = sized_for_batch(
        dataclasses.replace(model, max_tokens=256), EquationCheckerConfig(), batch
    )
    assert sized.cpu_kv_cache_gib == 3.5
    fixed = dataclasses.replace(model, cpu_kv_cache_gib=1.0)
    assert sized_for_batch(fixed, EquationCheckerConfig(), batch) == fixed


def test_a_prm_engine_of_its_own_is_left_room_and_a_model_free_one_none(on_cpu):
    model = tiny_model_config(ModelConfig)
    assert cpu_bytes_beside(EquationCheckerConfig(), model) == 0
    prm = prm_config("trl", model_path="/nowhere", cpu_kv_cache_gib=0.5)
    assert cpu_bytes_beside(prm, model) == int(0.5 * GIB) + 2 * GIB + kv_cache.ENGINE_RUNTIME_BYTES


class FakeEngine:
    started: ClassVar[list[float]] = []

    def __init__(self, cfg: ModelConfig) -> None:
        self.cpu_kv_cache_gib = vllm_engine.cpu_kv_cache_gib(cfg)
        self.closed = False
        self.dead = False
        FakeEngine.started.append(self.cpu_kv_cache_gib)

    def close(self) -> None:
        self.closed = True


def test_an_engine_is_reused_when_its_cache_is_big_enough_and_restarted_once_when_not(
    monkeypatch,
):
    monkeypatch.setattr(vllm_engine, "VLLMEngine", FakeEngine)
    monkeypatch.setattr(vllm_engine, "_ENGINES", {})
    FakeEngine.started = []
    model = tiny_model_config(ModelConfig)
    small = vllm_engine.get_engine(dataclasses.replace(model, cpu_kv_cache_gib=1.0))
    assert vllm_engine.get_engine(model) is small  # unset: 1 GiB outside a run
    bigger = vllm_engine.get_engine(dataclasses.replace(model, cpu_kv_cache_gib=2.5))
    assert bigger is not small and small.closed
    for gib in (1.0, 2.0, 2.5):  # a bigger cache serves every smaller request
        assert vllm_engine.get_engine(dataclasses.replace(model, cpu_kv_cache_gib=gib)) is bigger
    other = vllm_engine.get_engine(dataclasses.replace(model, max_model_len=2048))
    assert other is not bigger and not bigger.closed  # other settings: another engine
    assert FakeEngine.started == [1.0, 2.5, 1.0]


def test_an_engine_whose_core_died_is_replaced_and_the_others_are_kept(monkeypatch):
    monkeypatch.setattr(vllm_engine, "VLLMEngine", FakeEngine)
    monkeypatch.setattr(vllm_engine, "_ENGINES", {})
    FakeEngine.started = []
    model = tiny_model_config(ModelConfig)
    first = vllm_engine.get_engine(model)
    other = vllm_engine.get_engine(dataclasses.replace(model, max_model_len=2048))
    first.dead = True  # what an EngineDeadError under one of its calls sets
    assert not vllm_engine.has_engine(model)
    again = vllm_engine.get_engine(model)
    assert again is not first and first.closed and not again.dead
    assert vllm_engine.get_engine(model) is again  # and it is reused from then on
    assert vllm_engine.get_engine(dataclasses.replace(model, max_model_len=2048)) is other
    assert not other.closed and FakeEngine.started == [1.0, 1.0, 1.0]


@pytest.mark.slow
def test_a_real_engine_whose_core_is_killed_is_dead_and_the_next_get_engine_starts_a_new_one():
    """What poisoned a sweep: an engine core killed mid-sweep (here by SIGKILL) left every later
    job of the basic launcher the same dead engine, and each failed at once."""
    from vllm.v1.engine.exceptions import EngineDeadError

    from hotncold.engine.requests import GenerationRequest

    # its own engine (another max_model_len), so the session's shared one is left alone
    cfg = dataclasses.replace(
        tiny_model_config(ModelConfig), max_model_len=512, cpu_kv_cache_gib=1.0
    )
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    engine = vllm_engine.get_engine(cfg)
    request = [GenerationRequest("1 + 1 =", 0.0, max_tokens=4, seed=0)]
    try:
        assert engine.generate(request)[0][0].num_tokens > 0 and not engine.dead
        spawned = [  # vLLM's engine core and worker (their titles), not multiprocessing's helpers
            p
            for p in me.children(recursive=True)
            if p.pid not in before and p.name().startswith("VLLM")
        ]
        assert spawned, "the engine started no processes of its own"
        for process in spawned:
            os.kill(process.pid, signal.SIGKILL)
        psutil.wait_procs(spawned, timeout=30)
        with pytest.raises(EngineDeadError):
            engine.generate(request)
        assert engine.dead
        replacement = vllm_engine.get_engine(cfg)
        assert replacement is not engine and engine.llm is None  # the dead one was closed
        assert replacement.generate(request)[0][0].num_tokens > 0
    finally:  # neither engine outlives the test
        for cached in [e for e in list(vllm_engine._ENGINES.values()) if e.max_model_len == 512]:
            vllm_engine.close_engine(cached)
        engine.close()
