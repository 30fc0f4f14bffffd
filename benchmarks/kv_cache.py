"""The CPU KV cache: the old fixed 1 GiB against the cache sized for the batch (the default),
and what the per-step statistics behind the progress bar cost (the sized engine without them).

Both engines get the same requests, a batch of the default run (the first problems of the
default dataset, Best-of-N at n=8 and T=0.8, one request per problem), with the engine seeded
the same way and the requests in the same order, so both sample the same text (checked): the
only difference is whether vLLM has to preempt sequences and compute them again when the batch
outgrows its KV cache. Each engine generates the batch `repeats` times after a warm-up; the
figure is the ratio of the median generated tokens per second. The engines run one after the
other (two would not fit beside each other here), so a busy machine shows in the spread.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

from hotncold.config import DatasetConfig, EquationCheckerConfig, ModelConfig, PromptConfig
from hotncold.data import load_problems
from hotncold.engine import kv_cache
from hotncold.engine.prompts import build_prompt
from hotncold.engine.requests import GenerationRequest
from hotncold.engine.vllm_engine import VLLMEngine
from hotncold.prm.registry import sized_for_batch

MODEL = ModelConfig(path="embedded:smollm2_135m", max_model_len=1024, step_delimiter="\n")
"""The default model option (conf/model/smollm2_135m.yaml) with the KV cache left to size."""


def main(problems: int = 32, n: int = 8, max_tokens: int = 128, repeats: int = 2) -> dict:
    model = dataclasses.replace(MODEL, max_tokens=max_tokens)
    texts = [p.problem for p in load_problems(DatasetConfig())[:problems]]
    prompt = PromptConfig()
    batch = kv_cache.Batch(
        problems=len(texts), n=n, prompt_tokens=kv_cache.prompt_tokens_bound(prompt, texts)
    )
    sized = sized_for_batch(model, EquationCheckerConfig(), batch)  # what a default run starts
    quiet = {**sized.engine_kwargs, "disable_log_stats": True}
    sides = {
        "fixed 1 GiB": dataclasses.replace(model, cpu_kv_cache_gib=kv_cache.DEFAULT_GIB),
        f"sized {sized.cpu_kv_cache_gib:g} GiB": sized,
        # the progress bar reads vLLM's per-step statistics: what they cost
        "sized, no stats": dataclasses.replace(sized, engine_kwargs=quiet),
    }
    result: dict = {"problems": len(texts), "n": n, "max_tokens": max_tokens, "sides": {}}
    outputs = {}
    for name, cfg in sides.items():
        engine = VLLMEngine(cfg)
        try:
            requests = [
                GenerationRequest(
                    build_prompt(engine, prompt, cfg, t), 0.8, max_tokens, n=n, seed=i
                )
                for i, t in enumerate(texts)
            ]
            engine.generate(requests[:2])  # warm-up
            rates, seconds = [], []
            for _ in range(repeats):
                started = time.perf_counter()
                out = engine.generate(requests)
                seconds.append(time.perf_counter() - started)
                rates.append(sum(g.num_tokens for gens in out for g in gens) / seconds[-1])
            outputs[name] = [[g.text for g in gens] for gens in out]
        finally:
            engine.close()
        tokens = sum(g.num_tokens for gens in out for g in gens)
        result["sides"][name] = {
            "cpu_kv_cache_gib": cfg.cpu_kv_cache_gib,
            "generated_tokens": tokens,
            "seconds": seconds,
            "tokens_per_s": rates,
        }
    fixed, default, unmetered = (
        statistics.median(s["tokens_per_s"]) for s in result["sides"].values()
    )
    result["speedup"] = default / fixed
    result["stats_overhead"] = unmetered / default - 1
    first, *others = outputs.values()
    result["same_text"] = all(other == first for other in others)
    need = kv_cache.batch_tokens(batch, max_tokens) / 1000
    print(
        f"kv_cache: {len(texts)} problems x n={n} x at most {max_tokens} tokens "
        f"(the batch needs about {need:.0f}k KV tokens), {repeats} runs each"
    )
    for name, side in result["sides"].items():
        rates = ", ".join(f"{r:.0f}" for r in side["tokens_per_s"])
        print(f"  {name:<16} {rates} generated tokens/s ({side['generated_tokens']} tokens)")
    print(f"  sized vs fixed   {result['speedup']:.2f}x, same text: {result['same_text']}")
    print(f"  cost of the stats the progress bar reads: {100 * result['stats_overhead']:+.1f}%")
    return result
