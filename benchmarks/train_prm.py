"""How long PRM training takes here: one epoch over 1,000 generated examples.

The examples are sampled and auto-labelled once with the embedded model (cached under
`.bench/`), then SmolLM2-135M is trained on them for a fixed number of optimizer steps, fully
and with LoRA, side by side; the epoch time is measured directly for the first `steps` steps
and projected to the 1,000 examples from the measured seconds per example.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from hotncold.config import ModelConfig
from hotncold.engine.vllm_engine import get_engine
from hotncold.train_prm.config import TrainConfig, TrainDataConfig
from hotncold.train_prm.data import generate_examples

MODEL = ModelConfig(
    path="embedded:smollm2_135m", max_tokens=192, max_model_len=1024, step_delimiter="\n"
)
CACHE = Path(".bench/train_prm_examples.jsonl")


def examples(count: int = 1000) -> list[dict]:
    if CACHE.exists():
        rows = [json.loads(line) for line in CACHE.read_text().splitlines()]
        if len(rows) >= count:
            return rows[:count]
    data = TrainDataConfig(per_level=count // 20 + 1, levels=[1, 2, 3, 4, 5], samples_per_problem=4)
    rows = generate_examples(data, MODEL, get_engine(MODEL), seed=0)[:count]
    CACHE.parent.mkdir(exist_ok=True)
    CACHE.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def main(steps: int = 6, batch_size: int = 8) -> dict:
    from hotncold.train_prm.trainer import train

    rows = examples()
    used = rows[: steps * batch_size]
    result = {"examples": len(rows), "steps_timed": steps, "batch_size": batch_size}
    for name, lora in (("full", False), ("lora", True)):
        cfg = TrainConfig(
            max_steps=steps,
            batch_size=batch_size,
            save_steps=10_000,
            logging_steps=steps,
            lora=lora,
            learning_rate=1e-4 if lora else 5e-5,
            data=TrainDataConfig(),
        )
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            train(used, cfg, Path(tmp), seed=0)
            seconds = time.perf_counter() - started
        per_example = seconds / len(used)
        result[name] = {
            "seconds": seconds,
            "seconds_per_example": per_example,
            "projected_epoch_1000_s": per_example * 1000,
        }
        print(
            f"train_prm {name:4s}: {len(used)} examples in {seconds:6.1f} s "
            f"-> one epoch over 1,000 examples ~ {per_example * 1000 / 60:5.1f} min"
        )
    result["lora_speedup"] = result["full"]["seconds"] / result["lora"]["seconds"]
    print(f"  LoRA is {result['lora_speedup']:.2f}x the speed of full fine-tuning")
    return result
