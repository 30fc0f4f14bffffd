"""Re-scoring a finished Best-of-N run against generating and scoring it again.

A Best-of-N run of the embedded SmolLM2-135M, scored by a tiny random-weight pooling PRM (the
Qwen2.5-Math-PRM format on vLLM's pooling runner: its scores mean nothing, its work is real),
finishes first (the source). Then, on the same engines, the same problems, alternating:
- again: the same run generated and scored from scratch into a new folder (what changing the
  verifier costs without re-scoring);
- rescore: `hotncold.experiment.rescore` of the source with the same PRM, and with the
  equation checker (a model-free verifier).
Reported: the wall time of each (best of the repeats) and their ratio, PRM tokens, and whether
re-scoring with the run's own PRM reproduced its stored step scores exactly (it must: the same
inputs in the same batches on the same engine).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from hotncold.config import Config, DatasetConfig, ModelConfig, RescoreConfig, TemperatureConfig
from hotncold.engine.vllm_engine import close_engines
from hotncold.experiment.rescore import rescore
from hotncold.experiment.run import execute
from hotncold.prm.registry import prm_config
from hotncold.testing import tiny_models as tiny

MODEL = ModelConfig(
    path="embedded:smollm2_135m", max_tokens=128, max_model_len=1024, step_delimiter="\n"
)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "completions.jsonl").read_text().splitlines()]


def main(repeats: int = 2, per_level: int = 2, n: int = 8) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        path = tiny.qwen_process_reward(tmp / "qwen_prm")
        prm = prm_config(
            "qwen_math_prm_7b", model_path=str(path), max_model_len=2048, cpu_kv_cache_gib=1
        )

        def run_config(out: Path) -> Config:
            return Config(
                out_dir=str(out),
                n=n,
                model=MODEL,
                prm=prm,
                batch_size=1000,
                dataset=DatasetConfig(per_level=per_level),
                temperature=TemperatureConfig(values=[0.4, 0.8, 1.2]),
            )

        source = tmp / "source"
        execute(run_config(source))  # also starts both engines: nothing below pays for that
        info = json.loads((source / "run.json").read_text())
        stored = records(source)
        times: dict[str, list[float]] = {"again": [], "rescore": [], "rescore_checker": []}
        tokens: dict[str, int] = {}
        exact = True
        worst = 0.0
        for r in range(repeats):
            started = time.perf_counter()
            execute(run_config(tmp / f"again{r}"))
            times["again"].append(time.perf_counter() - started)
            again = json.loads((tmp / f"again{r}" / "run.json").read_text())["totals"]
            tokens["again_generated"] = int(again["generated_tokens"])
            tokens["again_prm"] = int(again["prm_tokens"])

            started = time.perf_counter()
            [job] = rescore(
                source, RescoreConfig(prm=prm, batch_size=1000, out_dir=str(tmp / f"r{r}"))
            )
            times["rescore"].append(time.perf_counter() - started)
            totals = json.loads((job.rundir.path / "run.json").read_text())["totals"]
            tokens["rescore_prm"] = int(totals["prm_tokens"])
            for a, b in zip(stored, records(job.rundir.path)):
                for ca, cb in zip(a["completions"], b["completions"]):
                    exact &= ca["step_scores"] == cb["step_scores"] and ca["score"] == cb["score"]
                    worst = max(
                        [worst, *(abs(x - y) for x, y in zip(ca["step_scores"], cb["step_scores"]))]
                    )

            checker = RescoreConfig(
                prm=prm_config("equation_checker"), batch_size=1000, out_dir=str(tmp / f"c{r}")
            )
            started = time.perf_counter()
            rescore(source, checker)
            times["rescore_checker"].append(time.perf_counter() - started)
        close_engines()
    best = {k: min(v) for k, v in times.items()}
    result = {
        "problems": len(stored),
        "n": n,
        "completions": sum(len(r["completions"]) for r in stored),
        "source_generated_tokens": int(info["totals"]["generated_tokens"]),
        "seconds": times,
        "best_s": best,
        "again_vs_rescore": best["again"] / best["rescore"],
        "again_vs_rescore_checker": best["again"] / best["rescore_checker"],
        "tokens": tokens,
        "rescore_reproduces_stored_scores_exactly": bool(exact),
        "max_score_difference": worst,
    }
    print(
        f"rescore: {result['problems']} problems x n={n} ({result['completions']} completions, "
        f"{result['source_generated_tokens']:,d} generated tokens), best of {repeats}: generate "
        f"and score again {best['again']:.1f} s vs re-score {best['rescore']:.2f} s "
        f"({result['again_vs_rescore']:.0f}x) with the same pooling PRM "
        f"({tokens['again_prm']:,d} vs {tokens['rescore_prm']:,d} PRM tokens), "
        f"{best['rescore_checker']:.2f} s with the equation checker "
        f"({result['again_vs_rescore_checker']:.0f}x); own PRM reproduces the stored scores "
        f"exactly: {exact} (max difference {worst:.1e})"
    )
    return result
