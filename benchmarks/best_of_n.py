"""Best-of-N through the whole framework against a raw vLLM `generate` of the same requests.

The framework run includes everything a user pays for: loading problems, building prompts,
generation, PRM scoring, grading, metrics and the run directory's writes. The raw run replays
the exact requests the framework sent (same prompts, temperatures, n and seeds, so the same
tokens) straight to `vllm.LLM.generate`. Runs alternate, after a warm-up, and the median of
each side is compared: these machines are noisy, so only ratios from one process mean much.
"""

from __future__ import annotations

import statistics
import tempfile
import time

from hotncold.config import Config, DatasetConfig, ModelConfig, TemperatureConfig
from hotncold.engine.requests import GenerationRequest
from hotncold.engine.vllm_engine import get_engine
from hotncold.experiment.run import execute

MODEL = ModelConfig(
    path="embedded:smollm2_135m", max_tokens=128, max_model_len=1024, step_delimiter="\n"
)


def main(repeats: int = 5, per_level: int = 2, n: int = 8) -> dict:
    engine = get_engine(MODEL)
    captured: list[list[GenerationRequest]] = []
    original = engine.generate

    def capture(requests):
        captured.append(list(requests))
        return original(requests)

    def framework(tmp: str) -> float:
        cfg = Config(
            out_dir=tmp,
            n=n,
            model=MODEL,
            batch_size=1000,
            dataset=DatasetConfig(per_level=per_level),
            temperature=TemperatureConfig(values=[0.4, 0.8, 1.2]),
        )
        started = time.perf_counter()
        execute(cfg)
        return time.perf_counter() - started

    def raw(requests: list[GenerationRequest]) -> float:
        from vllm import SamplingParams, TokensPrompt

        started = time.perf_counter()
        ids = engine.tokenizer([r.prompt for r in requests], add_special_tokens=False)["input_ids"]
        engine.llm.generate(
            [TokensPrompt(prompt_token_ids=i) for i in ids],
            [
                SamplingParams(
                    n=r.n,
                    temperature=r.temperature,
                    max_tokens=r.max_tokens,
                    seed=r.seed,
                    top_p=r.top_p,
                )
                for r in requests
            ],
            use_tqdm=False,
        )
        return time.perf_counter() - started

    engine.generate = capture
    with tempfile.TemporaryDirectory() as tmp:
        framework(f"{tmp}/warmup")
    engine.generate = original
    requests = [r for call in captured for r in call]
    tokens_before = engine.stats.generated_tokens
    times = {"framework": [], "raw": []}
    for i in range(repeats):
        times["raw"].append(raw(requests))
        with tempfile.TemporaryDirectory() as tmp:
            times["framework"].append(framework(f"{tmp}/run{i}"))
    tokens = (engine.stats.generated_tokens - tokens_before) / repeats
    ratios = [f / r for f, r in zip(times["framework"], times["raw"])]
    overhead = statistics.median(ratios) - 1
    result = {
        "problems": per_level * 5,
        "n": n,
        "requests": len(requests),
        "generated_tokens_per_run": tokens,
        "framework_s": times["framework"],
        "raw_s": times["raw"],
        "pair_ratios": ratios,
        "overhead": overhead,
    }
    print(
        f"best_of_n: {per_level * 5} problems x n={n}, {len(requests)} requests, "
        f"{tokens:.0f} tokens per run, {repeats} alternating pairs"
    )
    print(f"  raw vLLM generate  {', '.join(f'{t:6.2f}' for t in times['raw'])} s")
    print(f"  hotncold run       {', '.join(f'{t:6.2f}' for t in times['framework'])} s")
    print(f"  framework overhead {100 * overhead:+.1f}% (median of pair ratios; target under 10%)")
    return result
