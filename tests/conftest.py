"""Shared fixtures. The real engine is started once per test session (it takes ~30 s)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
pytest_plugins = ["fake_hub"]  # the `hub_cache` fixture: a Hugging Face cache on disk

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def no_hydra_state_left_behind():
    """Fail a test after which Hydra's global state is still set up: hotncold's own code must
    clear what it sets up (hydra_private.app), or a later `initialize_config_dir` in the same
    process is refused. A test that runs `@hydra.main` in process clears it itself."""
    from hydra.core.global_hydra import GlobalHydra

    yield
    leaked = GlobalHydra.instance().is_initialized()
    GlobalHydra.instance().clear()
    assert not leaked, "this test left GlobalHydra initialized (see hydra_private.app)"


@pytest.fixture(autouse=True)
def no_stream_handler_left_on_a_captured_stream():
    """A command's `main()` run in process (`logging.basicConfig` in status, merge, analyze...)
    adds a plain stream handler bound to the test's captured stderr; left on the root logger,
    it writes to a closed file in every later test ("--- Logging error ---" on CI). Such
    handlers are removed after each test (pytest's own capture handlers are subclasses, and a
    run's log file is a FileHandler: both stay), and the root logger's level is put back."""
    import logging

    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        real = getattr(handler, "stream", None) in (sys.__stderr__, sys.__stdout__)
        if type(handler) is logging.StreamHandler and not real:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def real_engine():
    """The embedded SmolLM2 model on vLLM, shared by every slow test of the session."""
    from hotncold.config import ModelConfig
    from hotncold.engine.vllm_engine import close_engines, get_engine

    # A KV cache big enough for every slow test's run: a run that sized a bigger one would
    # restart the shared engine (vllm_engine.get_engine), closing the one tests hold here.
    engine = get_engine(dataclasses.replace(tiny_model_config(ModelConfig), cpu_kv_cache_gib=4.0))
    yield engine
    close_engines()


def run_module(
    module: str, *args: str, timeout: int = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m <module> args...` from the repository root, as a user types it (`env` adds
    to this process's environment)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )


def composed_config(*overrides: str, out_dir: str = "/tmp/unused"):
    """The typed `Config` `python -m hotncold OVERRIDES` would run, composed in this process
    through Hydra's compose API (so a real-path test can run it on the session's engine
    instead of starting one in a subprocess)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import hotncold.config.hydra  # noqa: F401  (the schema and resolvers)
    from hotncold.experiment.run import to_config

    given = [f"out_dir={out_dir}", "overrides=[]", *overrides]
    with initialize_config_dir(config_dir=str(ROOT / "hotncold" / "conf"), version_base="1.3"):
        composed = compose("config", overrides=given, return_hydra_config=True)
    cfg = to_config(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
    cfg.overrides = list(overrides)
    return cfg


def sweep_in_process(*overrides: str) -> None:
    """`python -m hotncold -m OVERRIDES` in this process (Hydra's basic launcher): its jobs
    reuse the engine this process holds (the session's `real_engine`, or a scripted one)."""
    from hotncold.cluster.sweep import hydra_app, task

    with hydra_app("hotncold") as hydra:
        hydra.multirun(config_name="config", task_function=task, overrides=list(overrides))


def tiny_model_config(cls):
    """The embedded model with the settings of the option hotncold/conf/model/smollm2_135m.yaml."""
    return cls(path="embedded:smollm2_135m", max_tokens=96, max_model_len=1024, step_delimiter="\n")


def solved_by_level(records: list[dict]) -> dict[int, int]:
    """Problems with a right completion, per level, after checking the grader's verdict on every
    completion whose extracted answer is an integer, independently of hotncold's grader: right
    exactly when it equals the generated problem's (integer) answer. Fails when no completion
    has an integer answer (nothing would have been checked)."""
    solved: dict[int, int] = {}
    checked = 0
    for rec in records:
        for c in rec["completions"]:
            if re.fullmatch(r"-?\d+", c["answer"] or ""):
                assert c["correct"] == (int(c["answer"]) == int(rec["problem"]["answer"])), c
                checked += 1
            elif not c["answer"]:
                assert not c["correct"], c  # no answer is never right
        level = rec["problem"]["level"]
        # under finished_only (the default) only finished completions count for pass@n
        solved[level] = solved.get(level, 0) + any(
            c["correct"] and c["finished"] for c in rec["completions"]
        )
    assert checked > 0, "no completion has an integer answer: nothing was checked"
    return solved


def slurm_missing() -> str | None:
    """Why no Slurm cluster with the `debug` partition answers here (None when one does)."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        return "no Slurm client (sbatch, scontrol) on PATH"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
        part = subprocess.run(
            ["sinfo", "-h", "-p", "debug"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"Slurm does not answer ({error})"
    if "UP" not in ping.stdout:
        last = (ping.stdout + ping.stderr).strip().splitlines()[-1:] or ["no output"]
        return f"no Slurm controller answers (scontrol ping: {last[0][:200]})"
    if not part.stdout.strip():
        return "the Slurm cluster has no `debug` partition (cluster=slurm_local needs one)"
    return None


@pytest.fixture(scope="session")
def slurm():
    """A running Slurm cluster, or a skip (a failure where HOTNCOLD_REQUIRE_SLURM=1, as in CI).

    Start one here with `tests/slurm_local.sh install && tests/slurm_local.sh start`, then
    `eval "$(tests/slurm_local.sh env)"` before pytest.
    """
    why = slurm_missing()
    if why is not None:
        message = (
            f'{why}; start one: tests/slurm_local.sh start && eval "$(tests/slurm_local.sh env)"'
        )
        if os.environ.get("HOTNCOLD_REQUIRE_SLURM") == "1":
            pytest.fail(f"HOTNCOLD_REQUIRE_SLURM=1 but {message}")
        pytest.skip(message)
