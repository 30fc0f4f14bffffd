"""Run by tests/test_cluster.py as a Slurm job step: does hotncold's vLLM engine outlive the
preemption signal that Slurm delivers to every process of the step?

It starts the engine as a run does (hotncold.engine.get_engine on the embedded model), installs
a handler for submitit's preemption signal (SIGUSR2) as submitit does, prints `ready`, and waits.
When the signal has been handled it reports which of the engine's processes were alive at that
moment, then generates once more: a handler (submitit's, or one that finishes the batch in
flight) can only rely on the engine if its processes did not die of the signal.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # conftest, and this checkout's hotncold


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (vLLM's engine core, its workers, multiprocessing helpers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has died; its parent has not reaped it


def main() -> int:
    from conftest import tiny_model_config

    from hotncold.config import ModelConfig
    from hotncold.engine.requests import GenerationRequest
    from hotncold.engine.vllm_engine import close_engines, get_engine

    engine = get_engine(tiny_model_config(ModelConfig))
    request = GenerationRequest(prompt="1 + 1 =", temperature=0.7, max_tokens=8, n=2, seed=0)
    engine.generate([request])
    processes = descendants(os.getpid())
    handled = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        dead = [pid for pid in processes if not alive(pid)]
        print(
            f"handled {signal.Signals(signum).name}: {len(processes)} engine processes, "
            f"{len(dead)} dead",
            flush=True,
        )
        handled.set()

    signal.signal(signal.SIGUSR2, on_signal)
    print(f"ready: {len(processes)} engine processes", flush=True)
    while not handled.wait(0.2):
        pass

    outcome: list[str] = []

    def generate() -> None:
        try:
            engine.generate([request])
            outcome.append("generated after the signal")
        except Exception as error:  # what a handler would meet: EngineDeadError
            outcome.append(f"generation after the signal failed: {type(error).__name__}")

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    worker.join(120)
    print(outcome[0] if outcome else "generation after the signal hung", flush=True)
    if outcome:
        close_engines()  # the engine's processes end with this one (they would linger, orphaned)
    os._exit(
        0 if outcome == ["generated after the signal"] else 1
    )  # skip the interpreter's teardown


if __name__ == "__main__":
    sys.exit(main())
