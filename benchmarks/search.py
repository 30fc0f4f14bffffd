"""Step-search throughput against Best-of-N's, with and without the answer-aware stop; and beam
search and DVTS batched across problems against a one-problem-at-a-time loop.

`throughput`: Best-of-N, beam search and DVTS on the same engine, model, PRM, problems and
seeds, each approach with `answer_stop` off and on, and the step searches under both schedulers
(`approach.scheduler`: barrier, async). Best-of-N's tokens/s (all samples of all problems in
one engine call) is the engine's ceiling here; the step searches' tokens/s is given as a ratio
of it (the issue's target: at least 0.9x), each approach's wall time and generated tokens with
the stop as a ratio of those without, and whether both schedulers wrote the same records.

`main` also runs the batched-vs-one-at-a-time comparison:

Both sides run the same approach code on the same engine, model, PRM, problems and seeds; the
only difference is how many problems one `solve` call gets: all of them (one engine call per
search iteration for every beam of every problem, as hotncold runs) or one (search-and-learn's
beam search requires a batch of one). Every request carries its own seed, so the two sides
sample the same text wherever the engine's numerics do not depend on the batch: the benchmark
reports how many problems came out identical, and the accuracy and length statistics of both.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter

from hotncold.config import (
    ApproachConfig,
    DatasetConfig,
    EquationCheckerConfig,
    ModelConfig,
    PromptConfig,
    TemperatureConfig,
)
from hotncold.data import load_problems
from hotncold.engine.kv_cache import Batch, prompt_tokens_bound
from hotncold.engine.prompts import build_prompt
from hotncold.engine.requests import GenerationRequest
from hotncold.engine.vllm_engine import get_engine, sized_for
from hotncold.evaluation.grading import Grader
from hotncold.evaluation.metrics import metrics_from_records
from hotncold.experiment.run import grade_problem
from hotncold.prm.registry import build_prm
from hotncold.search.base import SearchContext
from hotncold.search.registry import build_approach
from hotncold.search.schedule import SCHEDULERS
from hotncold.search.temperature import TemperaturePlan

# vLLM's prefix cache saves re-reading a candidate's prefix only while the KV cache holds the
# previous iteration: 10 problems x 16 candidates x ~150 tokens is about what the default
# 1 GiB holds (~23k tokens), hence max_tokens=48. More KV memory makes batching gain more (the
# memory of this shared machine did not allow 2 GiB).
MODEL = ModelConfig(
    path="embedded:smollm2_135m", max_tokens=48, max_model_len=1024, step_delimiter="\n"
)


THROUGHPUT_MODEL = ModelConfig(
    path="embedded:smollm2_135m", max_tokens=128, max_model_len=1024, step_delimiter="\n"
)
"""The CPU presets' generation settings (`experiment=hot_vs_cold_cpu`)."""


def throughput(
    n: int = 8,
    per_level: int = 2,
    levels: int = 4,
    iterations: int = 8,
    engine_kwargs: dict | None = None,
    stops: tuple[bool, ...] = (False, True),
    schedulers: tuple[str, ...] = SCHEDULERS,
) -> dict:
    model = dataclasses.replace(THROUGHPUT_MODEL, engine_kwargs=dict(engine_kwargs or {}))
    problems = load_problems(DatasetConfig(per_level=per_level, levels=list(range(1, levels + 1))))
    # the KV cache a run of this batch would get (`model.cpu_kv_cache_gib` unset)
    model, _ = sized_for(
        model, Batch(len(problems), n, prompt_tokens_bound(PromptConfig(), problems)), 0
    )
    engine = get_engine(model)
    prm = build_prm(EquationCheckerConfig(), engine=engine)
    prompts = [build_prompt(engine, PromptConfig(), model, p.problem) for p in problems]
    load = os.getloadavg()
    results: dict = {
        "problems": len(problems),
        "n": n,
        "beam_width": 4,
        "num_iterations": iterations,
        "max_tokens": model.max_tokens,
        "engine_kwargs": model.engine_kwargs,
        "cpu_kv_cache_gib": model.cpu_kv_cache_gib,
        "load_average_before": load,
    }
    print(
        f"throughput: {len(problems)} problems x n={n}, m=4, {iterations} iterations, "
        f"max_tokens={model.max_tokens}, KV cache {model.cpu_kv_cache_gib:g} GiB, "
        f"engine {model.engine_kwargs}; load average {load[0]:.2f} {load[1]:.2f}"
    )
    sides = [("best_of_n", "barrier")] + [
        (name, scheduler) for name in ("beam_search", "dvts") for scheduler in schedulers
    ]
    texts = {}
    for stop in stops:
        for name, scheduler in sides:
            ctx = SearchContext(
                engine=engine,
                prm=prm,
                plan=TemperaturePlan.from_config(TemperatureConfig(values=[0.8])),
                model=model,
                approach=ApproachConfig(
                    name=name,
                    beam_width=4,
                    num_iterations=iterations,
                    answer_stop=stop,
                    scheduler=scheduler,
                ),
                n=n,
                seed=0,
                agg_strategy=EquationCheckerConfig().agg_strategy,
            )
            prm.reset()
            engine.llm.reset_prefix_cache()  # no side reads another's prompts from the cache
            before = engine.stats.snapshot()
            started = time.perf_counter()
            completions = build_approach(name).solve(problems, prompts, ctx)
            seconds = time.perf_counter() - started
            after = engine.stats.snapshot()
            tokens = after["generated_tokens"] - before["generated_tokens"]
            flat = [c for cs in completions for c in cs]
            key = _side(name, scheduler, stop)
            texts[key] = [[c.to_json() for c in cs] for cs in completions]
            results[key] = {
                "seconds": seconds,
                "generated_tokens": tokens,
                "tokens_per_s": tokens / seconds,
                "engine_calls": after["calls"] - before["calls"],
                "prompt_tokens": after["prompt_tokens"] - before["prompt_tokens"],
                # the share of prompt tokens vLLM's prefix cache held (not computed again)
                "cached_prompt_share": (
                    after["cached_prompt_tokens"] - before["cached_prompt_tokens"]
                )
                / max(1, after["prompt_tokens"] - before["prompt_tokens"]),
                "answer_stops": after["answer_stops"] - before["answer_stops"],
                "finish_reasons": dict(Counter(c.finish_reason for c in flat)),
            }
    for stop in stops:
        ceiling_rate = results[_side("best_of_n", "barrier", stop)]["tokens_per_s"]
        for name, scheduler in sides:
            r = results[_side(name, scheduler, stop)]
            r["tokens_per_s_vs_best_of_n"] = r["tokens_per_s"] / ceiling_rate
            if scheduler == "async" and _side(name, "barrier", stop) in texts:
                barrier = texts[_side(name, "barrier", stop)]
                r["same_records_as_barrier"] = sum(
                    a == b for a, b in zip(texts[_side(name, scheduler, stop)], barrier)
                )
    both = stops == (False, True)  # the answer stop's ratios need both sides
    for name, scheduler in sides:
        if both:
            off, on = results[_side(name, scheduler, False)], results[_side(name, scheduler, True)]
            on["seconds_vs_no_stop"] = on["seconds"] / off["seconds"]
            on["tokens_vs_no_stop"] = on["generated_tokens"] / off["generated_tokens"]
        for stop in stops:
            r = results[_side(name, scheduler, stop)]
            same = r.get("same_records_as_barrier")
            print(
                f"  {name:11s} {scheduler:7s} {'answer stop' if stop else 'no stop':11s} "
                f"{r['seconds']:6.1f} s {r['generated_tokens']:6d} tokens "
                f"{r['tokens_per_s']:6.1f}/s ({r['tokens_per_s_vs_best_of_n']:.2f}x Best-of-N's) "
                f"{r['engine_calls']:4d} engine calls, prompts {r['cached_prompt_share']:.0%} "
                f"cached, {r['answer_stops']} answer stops {r['finish_reasons']}"
                + ("" if same is None else f"; {same}/{len(problems)} problems as barrier")
            )
        if both:
            print(
                f"  {name:11s} {scheduler:7s} answer stop / none: "
                f"{on['seconds_vs_no_stop']:.2f}x the time, {on['tokens_vs_no_stop']:.2f}x "
                "the tokens"
            )
    results["load_average_after"] = os.getloadavg()
    return results


def _side(name: str, scheduler: str, stop: bool) -> str:
    return "_".join(
        [name, *([scheduler] if name != "best_of_n" else []), *(["answer_stop"] if stop else [])]
    )


def block_sizes(sizes: tuple[int, ...] = (128, 32)) -> dict:
    """`throughput`'s Best-of-N and async step searches (no answer stop) on engines that differ
    only in their KV block: vLLM's CPU default (128) against hotncold's (32). The prefix cache
    reuses whole blocks, so a smaller block leaves less of each cached prompt to compute again
    (the samples of one prompt, a step search's next-step prompts)."""
    from hotncold.engine.vllm_engine import close_engines

    results = {}
    for size in sizes:
        close_engines()  # one engine at a time on this machine
        results[size] = throughput(
            engine_kwargs={"block_size": size}, stops=(False,), schedulers=("async",)
        )
    close_engines()
    first = results[sizes[0]]
    for size in sizes[1:]:
        for side in ("best_of_n", "beam_search_async", "dvts_async"):
            ratio = first[side]["seconds"] / results[size][side]["seconds"]
            same = results[size][side]["generated_tokens"] == first[side]["generated_tokens"]
            print(
                f"  block {size} against {sizes[0]}: {side} {ratio:.2f}x faster"
                f"{'' if same else ' (different tokens)'}"
            )
    return results


def window(
    n: int = 8,
    per_level: int = 6,
    levels: int = 4,
    batch_size: int = 8,
    iterations: int = 8,
    open_batches: tuple[int, ...] = (1, 4),
    approaches: tuple[str, ...] = ("beam_search", "dvts"),
    barrier: bool = True,
) -> dict:
    """A run's problems as a run solves them (`run.solve_in_groups`), more problems than a
    batch: Best-of-N `batch_size` problems per engine call; beam search and DVTS under `async`
    as a window of up to `batch_size * n` samples in flight over at most `open_batches`
    batches of open problems (1: a batch's worth of problems, the next starting as one ends);
    and `barrier`, one batch at a time. The engine is sized for one batch, as a run's is. Each
    step search's tokens/s as a ratio of Best-of-N's, and whether every side wrote the same
    records (by problem) as the barrier."""
    from hotncold.config import Config
    from hotncold.experiment.run import solve_in_groups

    model = THROUGHPUT_MODEL
    problems = load_problems(DatasetConfig(per_level=per_level, levels=list(range(1, levels + 1))))
    model, _ = sized_for(
        model, Batch(batch_size, n, prompt_tokens_bound(PromptConfig(), problems)), 0
    )
    engine = get_engine(model)
    prm = build_prm(EquationCheckerConfig(), engine=engine)
    load = os.getloadavg()
    results: dict = {
        "problems": len(problems),
        "batch_size": batch_size,
        "n": n,
        "beam_width": 4,
        "num_iterations": iterations,
        "max_tokens": model.max_tokens,
        "cpu_kv_cache_gib": model.cpu_kv_cache_gib,
        "load_average_before": load,
    }
    print(
        f"window: {len(problems)} problems in batches of {batch_size} x n={n}, m=4, "
        f"{iterations} iterations, max_tokens={model.max_tokens}, KV cache "
        f"{model.cpu_kv_cache_gib:g} GiB; load average {load[0]:.2f} {load[1]:.2f}"
    )
    sides = [("best_of_n", "barrier", 1)] + [
        (name, scheduler, k)
        for name in approaches
        for scheduler, k in [("barrier", 1)] * barrier + [("async", k) for k in open_batches]
    ]
    records = {}
    for name, scheduler, k in sides:
        cfg = Config(
            model=model,
            n=n,
            batch_size=batch_size,
            approach=ApproachConfig(
                name=name,
                beam_width=4,
                num_iterations=iterations,
                scheduler=scheduler,
                open_batches=k,
            ),
            prm=EquationCheckerConfig(),
        )
        ctx = SearchContext(
            engine=engine,
            prm=prm,
            plan=TemperaturePlan.from_config(TemperatureConfig(values=[0.8])),
            model=model,
            approach=cfg.approach,
            n=n,
            seed=0,
            agg_strategy=cfg.prm.agg_strategy,
        )
        prm.reset()
        engine.llm.reset_prefix_cache()  # no side reads another's prompts from the cache
        before = engine.stats.snapshot()
        started = time.perf_counter()
        out = {}
        for group in solve_in_groups(cfg, build_approach(name), ctx, problems, batch_size):
            for p, _, cs in group:
                out[p.uid] = [c.to_json() for c in cs]
                prm.forget(p.problem)
        seconds = time.perf_counter() - started
        after = engine.stats.snapshot()
        tokens = after["generated_tokens"] - before["generated_tokens"]
        key = (
            name
            if name == "best_of_n"
            else f"{name}_{scheduler}" + (f"_open_{k}" if scheduler == "async" else "")
        )
        records[key] = out
        results[key] = {
            "seconds": seconds,
            "generated_tokens": tokens,
            "tokens_per_s": tokens / seconds,
            "engine_calls": after["calls"] - before["calls"],
            "cached_prompt_share": (after["cached_prompt_tokens"] - before["cached_prompt_tokens"])
            / max(1, after["prompt_tokens"] - before["prompt_tokens"]),
        }
    ceiling_rate = results["best_of_n"]["tokens_per_s"]
    for key, r in results.items():
        if not isinstance(r, dict) or "tokens_per_s" not in r:
            continue
        r["tokens_per_s_vs_best_of_n"] = r["tokens_per_s"] / ceiling_rate
        name = "beam_search" if key.startswith("beam_search") else key.split("_")[0]
        barrier = records.get(f"{name}_barrier")
        same = ""
        if barrier is not None and key != f"{name}_barrier":
            r["same_records_as_barrier"] = sum(records[key][u] == barrier[u] for u in barrier)
            same = f"; {r['same_records_as_barrier']}/{len(problems)} problems as barrier"
        print(
            f"  {key:24s} {r['seconds']:6.1f} s {r['generated_tokens']:6d} tokens "
            f"{r['tokens_per_s']:6.1f}/s ({r['tokens_per_s_vs_best_of_n']:.2f}x Best-of-N's) "
            f"{r['engine_calls']:4d} engine calls, prompts {r['cached_prompt_share']:.0%} "
            f"cached{same}"
        )
    results["load_average_after"] = os.getloadavg()
    return results


def main(n: int = 16, per_level: int = 2, iterations: int = 5) -> dict:
    results = {"throughput": throughput(), "window": window(), "block_sizes": block_sizes()}
    results.update(batched_vs_one_at_a_time(n, per_level, iterations))
    return results


def batched_vs_one_at_a_time(n: int, per_level: int, iterations: int) -> dict:
    engine = get_engine(MODEL)
    prm = build_prm(EquationCheckerConfig(), engine=engine)
    problems = load_problems(DatasetConfig(per_level=per_level))
    prompts = [build_prompt(engine, PromptConfig(), MODEL, p.problem) for p in problems]
    grader = Grader()
    results = {"engine_ceiling": ceiling(engine, prompts, n)}
    for name in ("beam_search", "dvts"):
        ctx = SearchContext(
            engine=engine,
            prm=prm,
            plan=TemperaturePlan.from_config(TemperatureConfig(values=[0.8])),
            model=MODEL,
            approach=ApproachConfig(name=name, beam_width=4, num_iterations=iterations),
            n=n,
            seed=0,
            agg_strategy=EquationCheckerConfig().agg_strategy,
        )
        approach = build_approach(name)

        def batched(ctx=ctx, approach=approach):
            prm.reset()
            return approach.solve(problems, prompts, ctx)

        def one_at_a_time(ctx=ctx, approach=approach):
            out = []
            for problem, prompt in zip(problems, prompts):
                prm.reset()
                out += approach.solve([problem], [prompt], ctx)
            return out

        sides = {}
        for side, solve in (("one_at_a_time", one_at_a_time), ("batched", batched)):
            # neither side may reuse the other's prompts from vLLM's prefix cache
            engine.llm.reset_prefix_cache()
            calls, tokens, prm_calls = (
                engine.stats.calls,
                engine.stats.generated_tokens,
                (prm.stats.calls),
            )
            started = time.perf_counter()
            completions = solve()
            seconds = time.perf_counter() - started
            records = [
                grade_problem(p, prompt, cs, grader, ctx.agg_strategy)
                for p, prompt, cs in zip(problems, prompts, completions)
            ]
            metrics = metrics_from_records(
                records, n, 64, 0, finished_only=ctx.approach.finished_only
            )["overall"]
            flat = [c for cs in completions for c in cs]
            sides[side] = {
                "seconds": seconds,
                "engine_calls": engine.stats.calls - calls,
                "prm_calls": prm.stats.calls - prm_calls,
                "generated_tokens": engine.stats.generated_tokens - tokens,
                "tokens_per_s": (engine.stats.generated_tokens - tokens) / seconds,
                "mean_completion_tokens": sum(c.num_tokens for c in flat) / len(flat),
                "mean_steps": sum(len(c.steps) for c in flat) / len(flat),
                "finish_reasons": dict(Counter(c.finish_reason for c in flat)),
                "naive": metrics["naive"][str(n)],
                "majority": metrics["majority"][str(n)],
                "pass": metrics["pass"][str(n)],
                "texts": [[c.text for c in cs] for cs in completions],
            }
        loop, batch = sides["one_at_a_time"], sides["batched"]
        identical = sum(a == b for a, b in zip(loop.pop("texts"), batch.pop("texts")))
        speedup = loop["seconds"] / batch["seconds"]
        results[name] = {
            "problems": len(problems),
            "n": n,
            "beam_width": 4,
            "num_iterations": iterations,
            "max_tokens": MODEL.max_tokens,
            "speedup": speedup,
            "identical_problems": identical,
            **sides,
        }
        print(
            f"{name}: {len(problems)} problems x n={n}, m=4, {iterations} iterations, "
            f"max_tokens={MODEL.max_tokens}"
        )
        for side, r in sides.items():
            print(
                f"  {side:14s} {r['seconds']:7.1f} s  {r['engine_calls']:4d} engine calls  "
                f"{r['prm_calls']:4d} PRM calls  {r['generated_tokens']:6d} tokens "
                f"({r['tokens_per_s']:5.1f}/s)  naive {r['naive']:.2f} majority "
                f"{r['majority']:.2f} pass {r['pass']:.2f}  {r['finish_reasons']}"
            )
        print(
            f"  batched is {speedup:.2f}x faster (target >= 3x); "
            f"{identical}/{len(problems)} problems sampled identically"
        )
    return results


def ceiling(engine, prompts: list[str], n: int, tokens: int = 32) -> dict:
    """What batching across problems can gain on this machine at most: the same requests
    (n samples of every prompt, `tokens` tokens each, no stop) as one call, and as one call per
    prompt. On a GPU the ratio is large; on a few CPU cores a batch of n already keeps them busy.
    """
    requests = [
        GenerationRequest(prompt=p, temperature=0.8, max_tokens=tokens, seed=i * n + j)
        for i, p in enumerate(prompts)
        for j in range(n)
    ]
    engine.llm.reset_prefix_cache()
    started = time.perf_counter()
    for i in range(len(prompts)):
        engine.generate(requests[i * n : (i + 1) * n])
    loop = time.perf_counter() - started
    engine.llm.reset_prefix_cache()
    started = time.perf_counter()
    engine.generate(requests)
    batched = time.perf_counter() - started
    print(
        f"engine ceiling: {len(requests)} requests of {tokens} tokens, one call per prompt "
        f"{loop:.1f} s, one call {batched:.1f} s: {loop / batched:.2f}x"
    )
    return {"one_call_per_prompt_s": loop, "one_call_s": batched, "ratio": loop / batched}
