"""PRM scoring: incremental vs full-prefix on the same beams, and one PRM server for two jobs.

The beams replay what beam search asks of a PRM: every iteration, each beam has grown by one
step and the whole batch is scored again. Two ways to answer:
- incremental (hotncold): only the new step is scored, and the engine's prefix cache supplies
  everything before it;
- full prefix (search-and-learn's way): every step of every beam is re-read at every iteration
  (`prm.incremental=false`: no score cache, the engine's prefix cache emptied before each call).
Both run on the same engine, the same beams, alternating, and must give the same scores; the
PRM tokens are what the engine computed (prompt tokens minus prefix-cache hits).

Two PRMs of SmolLM2-135M's size with random weights: the RLHFlow format on a Llama (vLLM
generate runner, label log-probabilities at each step) and the Qwen2.5-Math-PRM format on a
Qwen2 process-reward model (vLLM pooling runner). Their scores mean nothing; the work is real.
In full-prefix mode the requests of one call still share prefixes within that call, so each
call reads every beam about once, as one forward pass per beam would.

The server part starts `python -m hotncold.prm_server` with that Qwen PRM and replays the beams
of one job alone, then of two jobs at once, each from its own thread through `prm.server_url`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from hotncold.config import DatasetConfig, PRMConfig
from hotncold.data import load_problems
from hotncold.engine.vllm_engine import close_engine
from hotncold.prm.registry import build_prm, prm_config
from hotncold.testing import tiny_models as tiny

ROOT = Path(__file__).resolve().parent.parent
BLOCK = 32  # the smallest KV block the CPU backend runs well; GPUs default to 16


def beams(problems: int, width: int, depth: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """`width` beams of `depth` arithmetic steps for each of `problems` problems; the beams of a
    problem share their first step, as beam search's survivors share ancestors."""
    out = []
    for p, problem in enumerate(load_problems(DatasetConfig(per_level=problems, levels=[3]))):
        if p == problems:
            break
        for b in range(width):
            total, steps = 10 + p, [f"We start from {10 + p}."]
            for k in range(1, depth):
                add = (7 * k + 3 * b + seed) % 13 + 1
                steps.append(f"Step {k}: add {add} to get {total} + {add} = {total + add}.")
                total += add
            out.append((problem.problem, steps))
    return out


def replay(prm, trace: list[tuple[str, list[str]]]) -> tuple[list[list[float]], int, float]:
    """Score the trace iteration by iteration; final scores, PRM tokens, seconds."""
    depth = max(len(s) for _, s in trace)
    tokens, started = prm.stats.tokens, time.perf_counter()
    scores: list[list[float]] = []
    for d in range(1, depth + 1):
        scores = prm.score([(problem, steps[:d]) for problem, steps in trace])
    return scores, prm.stats.tokens - tokens, time.perf_counter() - started


def compare(prm, trace, repeats: int) -> dict:
    runs = {"incremental": [], "full": []}
    final = {}
    for _ in range(repeats):
        for mode in ("full", "incremental"):
            prm.reset()
            prm.engine.reset_prefix_cache()
            prm.incremental = mode == "incremental"
            final[mode], tokens, seconds = replay(prm, trace)
            runs[mode].append((tokens, seconds))
    prm.incremental = True
    worst = max(
        abs(a - b) for x, y in zip(final["incremental"], final["full"]) for a, b in zip(x, y)
    )
    inc_tokens = min(t for t, _ in runs["incremental"])
    full_tokens = min(t for t, _ in runs["full"])
    inc_s = min(s for _, s in runs["incremental"])
    full_s = min(s for _, s in runs["full"])
    return {
        "incremental_tokens": inc_tokens,
        "full_tokens": full_tokens,
        "token_ratio": full_tokens / inc_tokens,
        "incremental_s": inc_s,
        "full_s": full_s,
        "speedup": full_s / inc_s,
        "runs": runs,
        "max_score_difference": worst,
    }


def growth(prm, trace, depths: tuple[int, ...]) -> dict[int, int]:
    """Incremental PRM tokens of a whole search cut at each depth: linear, not quadratic."""
    out = {}
    for depth in depths:
        prm.reset()
        prm.engine.reset_prefix_cache()
        _, tokens, _ = replay(prm, [(p, s[:depth]) for p, s in trace])
        out[depth] = tokens
    return out


def prm_settings(name: str, path: str, **extra) -> PRMConfig:
    return prm_config(
        name,
        model_path=path,
        max_model_len=4096,
        # room for every live beam's prefix (about 140 kB per token for these models): a cache
        # that cannot hold them evicts prefixes, and evicted prefixes are read again
        cpu_kv_cache_gib=3,
        block_size=BLOCK,
        batch_size=1024,
        **extra,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_jobs(path: Path, tmp: Path, problems: int, width: int, depth: int) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hotncold.prm_server",
            "prm=qwen_math_prm_7b",
            f"prm.model_path={path}",
            "prm.max_model_len=4096",
            "prm.cpu_kv_cache_gib=3",
            f"prm.block_size={BLOCK}",
            f"port={port}",
            "batch_wait_ms=20",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the PRM server died: see {tmp / 'server.log'}")
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        cfg = prm_config("qwen_math_prm_7b", model_path=str(path), server_url=url)
        traces = [beams(problems, width, depth, seed=s) for s in (0, 1)]
        # warm-up: the first request pays one-off costs
        build_prm(cfg).score([(traces[0][0][0], traces[0][0][1][:1])])

        # every job's problems are its own, so nothing one job scored is in the server's cache
        # for another (the beams of the two concurrent jobs also differ: seeds 0 and 1)
        def job_trace(i: int, tag: str) -> list[tuple[str, list[str]]]:
            return [(f"{p} ({tag})", s) for p, s in traces[i]]

        alone = build_prm(cfg)
        _, alone_tokens, alone_s = replay(alone, job_trace(0, "alone"))

        jobs = [build_prm(cfg), build_prm(cfg)]
        for job in jobs:
            job.reset()
        results: dict[int, tuple] = {}
        barrier = threading.Barrier(2)

        def run(i: int) -> None:
            barrier.wait()
            results[i] = replay(jobs[i], job_trace(i, f"job {i + 1}"))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        both_s = time.perf_counter() - started
        stats = json.loads(urllib.request.urlopen(f"{url}/health").read())["stats"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        log.close()
    return {
        "one_job_s": alone_s,
        "one_job_tokens": alone_tokens,
        "two_jobs_s": both_s,
        "two_jobs_tokens": [results[0][1], results[1][1]],
        "two_jobs_vs_twice_one": both_s / (2 * alone_s),
        "server_requests": stats["requests"],
        "server_batches": stats["batches"],
        "server_merged_requests": stats["merged_requests"],
    }


def main(problems: int = 2, width: int = 4, depth: int = 40, repeats: int = 1) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    trace = beams(problems, width, depth)
    results: dict = {"problems": problems, "beams_per_problem": width, "depth": depth}
    print(
        f"prm: {problems} problems x {width} beams, {depth} steps, scored after every step "
        f"({repeats} alternating run(s) each, best kept)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = tiny.causal_lm(Path(tmp) / "llama_prm", "llama", size="small")
        rlhflow = build_prm(prm_settings("rlhflow_8b", str(path)))
        results["rlhflow_small"] = compare(rlhflow, trace, repeats)
        results["rlhflow_small"]["growth"] = growth(rlhflow, trace, (10, 20, 40))
        close_engine(rlhflow.engine)

        path = tiny.qwen_process_reward(Path(tmp) / "qwen_prm", size="small")
        qwen = build_prm(prm_settings("qwen_math_prm_7b", str(path)))
        results["qwen_prm_small"] = compare(qwen, trace, repeats)
        results["qwen_prm_small"]["growth"] = growth(qwen, trace, (10, 20, 40))
        # the server's one-job replay, in this process: what serving costs over the wire
        qwen.reset()
        qwen.engine.reset_prefix_cache()
        local = [(f"{p} (local)", s[: depth // 2]) for p, s in beams(problems, width, depth)]
        _, _, in_process_s = replay(qwen, local)
        close_engine(qwen.engine)

        for name in ("rlhflow_small", "qwen_prm_small"):
            r = results[name]
            print(
                f"  {name:15s} PRM tokens incremental {r['incremental_tokens']:>8,d} vs full "
                f"{r['full_tokens']:>9,d} ({r['token_ratio']:.1f}x fewer); wall "
                f"{r['incremental_s']:.1f} s vs {r['full_s']:.1f} s ({r['speedup']:.1f}x); "
                f"max score difference {r['max_score_difference']:.1e}"
            )
            g = r["growth"]
            print(
                "  "
                + " " * 15
                + " incremental tokens of a search cut at depth "
                + ", ".join(f"{d}: {t:,d}" for d, t in g.items())
            )

        results["server"] = server_jobs(path, Path(tmp), problems, width, depth // 2)
        s = results["server"]
        s["in_process_one_job_s"] = in_process_s
        print(
            f"  server (qwen_prm_small, {depth // 2} steps): one job {s['one_job_s']:.1f} s "
            f"({in_process_s:.1f} s in-process); two concurrent jobs {s['two_jobs_s']:.1f} s = "
            f"{s['two_jobs_vs_twice_one']:.2f} x two jobs in a row; {s['server_requests']} "
            f"requests in {s['server_batches']} engine batches ({s['server_merged_requests']} "
            "requests shared a batch)"
        )
    return results
