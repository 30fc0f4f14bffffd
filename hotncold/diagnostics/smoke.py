"""The doctor's smoke run: each engine path hotncold uses, on tiny random-weight models.

Two engines, as a run with an in-process PRM has: a tiny Llama on vLLM's generate runner and a
tiny Qwen2.5-Math-PRM-shaped model on its pooling runner, both built here in seconds
(`hotncold.testing.tiny_models`, with a tokenizer trained here, so nothing is downloaded).
Through them: generation (sampling, stop strings), a generative PRM (label-token
log-probabilities, the judge on the generator's engine), prompt log-probabilities
(self-certainty) and a pooling PRM (token-level head outputs), the last two read both from a
warm prefix cache and cold, which must agree: that is what breaks when a vLLM model runner
returns rows differently. Scores of random weights mean nothing; their shapes, ranges and
agreement do. On a GPU both engines get shares sized by the memory rule, like a run's.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hotncold.config import (
    ConfigError,
    JudgePRMConfig,
    ModelConfig,
    PRMConfig,
    PromptConfig,
    QwenMathPRMConfig,
    SelfCertaintyConfig,
)
from hotncold.diagnostics.checks import FAIL, PASS, SKIP, Check
from hotncold.engine import vllm_engine
from hotncold.engine.requests import GenerationRequest
from hotncold.experiment import preflight
from hotncold.prm.base import PRM
from hotncold.prm.registry import build_prm, plan_engines
from hotncold.testing import tiny_models

PROBLEM = (
    "Tom has 12 apples and buys 7 more. Then he gives 3 apples to Ann and eats 2 of them. "
    "How many apples does he have? Solve the math problem step by step."
)
STEPS = [
    "Tom starts with 12 apples and buys 7 more: 12 + 7 = 19.",
    "He gives 3 apples to Ann: 19 - 3 = 16. He eats 2 of them: 16 - 2 = 14.",
    "The final answer is $\\boxed{14}$.",
]
BLOCK = 32
"""KV block size of both engines: prefix caching reuses whole blocks, and the CPU backend's
default (128) is longer than these prompts; 32 is the smallest it runs well."""
AGREE = 1e-3
"""Warm-cache and cold scores of the same steps must agree this closely (float32 on CPUs,
bf16 on GPUs: both read the same computed values, the cache only decides which are reused)."""


def _timed(name: str, step: Callable[[], str]) -> Check:
    started = time.perf_counter()
    try:
        detail = step()
    except Exception as error:  # a smoke check reports, it does not crash the screen
        text = str(error).strip().splitlines()
        return Check("smoke", name, FAIL, f"{type(error).__name__}: {text[0] if text else ''}")
    return Check("smoke", name, PASS, f"{detail} ({time.perf_counter() - started:.1f} s)")


def _in_unit_interval(scores: list[float], count: int) -> None:
    if len(scores) != count or not all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores):
        raise AssertionError(f"expected {count} scores in [0, 1], got {scores}")


def _agree(warm: list[float], cold: list[float]) -> float:
    gap = max(abs(a - b) for a, b in zip(warm, cold, strict=True))
    if gap > AGREE:
        raise AssertionError(f"warm-cache scores {warm} differ from cold {cold} by {gap:.2g}")
    return gap


def run(workdir: Path | None = None) -> list[Check]:
    """Every smoke check, in order; engines are closed at the end."""
    with tempfile.TemporaryDirectory(prefix="hotncold-doctor-") as tmp:
        folder = Path(workdir or tmp)
        checks: list[Check] = []
        built: dict[str, Path] = {}

        def build() -> str:
            built["lm"] = tiny_models.causal_lm(folder / "lm", "llama", standalone=True)
            built["prm"] = tiny_models.qwen_process_reward(folder / "prm", standalone=True)
            return f"tiny models in {folder}"

        checks.append(_timed("tiny models", build))
        if checks[-1].status == FAIL:
            return checks
        model = ModelConfig(
            name="doctor-lm",
            path=str(built["lm"]),
            max_tokens=12,
            max_model_len=512,
            step_delimiter="\n",
            cpu_kv_cache_gib=0.25,
            engine_kwargs={"block_size": BLOCK},
        )
        pooling = QwenMathPRMConfig(
            name="qwen_math_prm_7b",
            model_path=str(built["prm"]),
            max_model_len=512,
            cpu_kv_cache_gib=0.25,
            block_size=BLOCK,
            agg_strategy="last",
        )
        try:
            plan = plan_engines(model, pooling, preflight.card_bytes())
        except ConfigError as error:  # the tiny engines' working memory does not fit the card
            return [*checks, Check("smoke", "engines", FAIL, str(error))]
        try:
            state: dict = {}
            checks.append(_timed("generation", lambda: _generation(plan.model, state)))
            for name, step in (("generative PRM", _judge), ("prompt logprobs", _certainty)):
                if "engine" in state:
                    checks.append(_timed(name, lambda step=step: step(plan.model, state)))
                else:
                    checks.append(Check("smoke", name, SKIP, "no generator engine to run on"))
            checks.append(_timed("pooling PRM", lambda: _pooling(plan.prm, plan.model)))
        finally:
            vllm_engine.close_engines()
        return checks


def _generation(model: ModelConfig, state: dict) -> str:
    engine = vllm_engine.get_engine(model)
    state["engine"] = engine
    prompt = engine.format_chat([{"role": "user", "content": PROBLEM}])
    requests = [
        GenerationRequest(prompt=prompt, n=2, temperature=0.8, max_tokens=12, seed=1),
        GenerationRequest(prompt=prompt, n=1, temperature=0.0, max_tokens=12, stop=("\n",)),
    ]
    out = engine.generate(requests)
    if [len(g) for g in out] != [2, 1] or not all(s.num_tokens > 0 for g in out for s in g):
        raise AssertionError(f"unexpected generations {out}")
    tokens = sum(s.num_tokens for g in out for s in g)
    return f"{engine.runner} runner, 3 samples, {tokens} tokens"


def _judge(model: ModelConfig, state: dict) -> str:
    prm = build_prm(
        JudgePRMConfig(name="judge", agg_strategy="min"), engine=state["engine"], model=model
    )
    [scores] = prm.score([(PROBLEM, STEPS)])
    _in_unit_interval(scores, len(STEPS))
    return f"label log-probabilities of 3 steps, P(+) {min(scores):.2f}-{max(scores):.2f}"


def _warm_and_cold(warm: PRM, cold: PRM, reset: Callable[[], None]) -> str:
    """Score a solution grown step by step on a warm prefix cache, then all of it cold: the
    same scores, and fewer tokens computed warm (or the cache was never read)."""
    warm.score([(PROBLEM, STEPS[:1])])
    before = warm.stats.tokens
    [grown] = warm.score([(PROBLEM, STEPS)])
    computed = warm.stats.tokens - before
    reset()
    [full] = cold.score([(PROBLEM, STEPS)])
    _in_unit_interval(grown, len(STEPS))
    gap = _agree(grown, full)
    if computed >= cold.stats.tokens:
        raise AssertionError(
            f"the grown solution computed {computed} tokens, no fewer than all of it cold "
            f"({cold.stats.tokens}): the prefix cache was not read"
        )
    return (
        f"3 steps; warm cache = cold within {gap:.1e}; tokens computed warm {computed} "
        f"(steps 2-3), cold {cold.stats.tokens}"
    )


def _certainty(model: ModelConfig, state: dict) -> str:
    engine = state["engine"]
    prompt = PromptConfig(system_prompt=None)  # the smoke's prompts are the user message alone
    warm = build_prm(
        SelfCertaintyConfig(name="self_certainty"), engine=engine, model=model, prompt=prompt
    )
    cold = build_prm(
        SelfCertaintyConfig(name="self_certainty", incremental=False),
        engine=engine,
        model=model,
        prompt=prompt,
    )
    return _warm_and_cold(warm, cold, engine.reset_prefix_cache)


def _pooling(prm_cfg: PRMConfig, model: ModelConfig) -> str:
    warm = build_prm(prm_cfg, model=model)
    cold = build_prm(dataclasses.replace(prm_cfg, incremental=False), model=model)
    return f"{warm.engine.runner} runner, " + _warm_and_cold(
        warm, cold, warm.engine.reset_prefix_cache
    )
