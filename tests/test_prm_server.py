"""The PRM server: protocol, batching of concurrent jobs, clear errors, a real run through it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, run_module, tiny_model_config

from hotncold.config import Config, ConfigError, DatasetConfig, ModelConfig
from hotncold.experiment.run import execute
from hotncold.prm.base import PRM, ItemScores
from hotncold.prm.http_client import RemotePRM
from hotncold.prm.http_server import PRMServer
from hotncold.prm.registry import build_prm, prm_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LengthPRM(PRM):
    """Scores a step by its length; records how its calls were batched. No model."""

    def __init__(self) -> None:
        super().__init__(batch_size=1000)
        self.calls: list[int] = []

    def _score_new(self, items):
        self.calls.append(len(items))
        if any("boom" in s for item in items for s in item.steps):
            raise ValueError("cannot score a boom")
        return [
            ItemScores(
                [min(1.0, len(s) / 100) for s in item.steps[item.start :]],
                sum(len(s) for s in item.steps[item.start :]),
            )
            for item in items
        ]


@pytest.fixture
def served():
    cfg = prm_config("equation_checker")
    prm = LengthPRM()
    server = PRMServer(prm, cfg, "127.0.0.1", free_port())
    server.start()
    yield server, prm
    server.shutdown()


def client(server: PRMServer, **extra) -> RemotePRM:
    return RemotePRM(prm_config("equation_checker", server_url=server.url, **extra))


def test_remote_scores_only_new_steps_and_counts_tokens(served):
    server, _ = served
    remote = client(server)
    assert remote.score([("p", ["ab", "cdef"])]) == [[0.02, 0.04]]
    assert remote.score([("p", ["ab", "cdef", "g"])]) == [[0.02, 0.04, 0.01]]
    assert remote.stats.steps_cached == 2 and remote.stats.steps_scored == 3
    assert remote.stats.tokens == 2 + 4 + 1  # what the server says each item cost
    health = json.loads(urllib.request.urlopen(f"{server.url}/health").read())
    assert health["status"] == "ok" and health["stats"]["requests"] == 2
    assert health["stats"]["pending"] == 0


def wait_until(condition, what: str, timeout: float = 60) -> None:
    """Poll for an event; fail naming it after `timeout` s (a hang, not a time assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def test_concurrent_jobs_share_batches(served):
    """Requests that queue while the PRM is busy are scored together in its next call. The PRM
    is held in a first request until both jobs' requests are queued: no timing involved."""
    server, prm = served
    entered, release = threading.Event(), threading.Event()
    score_new = prm._score_new

    def held(items):
        if not release.is_set():
            entered.set()
            release.wait()
        return score_new(items)

    prm._score_new = held
    out: dict[int, list] = {}

    def run(i: int) -> None:
        out[i] = client(server).score([(f"problem {i}", ["x" * (i + 1)])])

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(3)]
    threads[2].start()  # job 2 occupies the PRM...
    assert entered.wait(60), "the first request never reached the PRM"
    for t in threads[:2]:  # ...while jobs 0 and 1 ask at once
        t.start()
    wait_until(lambda: server.pending() == 2, "both jobs' requests to queue")
    release.set()
    for t in threads:
        t.join(60)
    assert out == {0: [[0.01]], 1: [[0.02]], 2: [[0.03]]}
    assert prm.calls == [1, 2]  # job 2 alone, then both jobs' requests in one PRM call
    stats = server.stats
    assert (stats.requests, stats.batches, stats.merged_requests, stats.items) == (3, 2, 2, 3)


def test_scoring_errors_reach_the_client(served):
    server, _ = served
    with pytest.raises(RuntimeError, match="cannot score a boom"):
        client(server).score([("p", ["boom"])])
    assert client(server).score([("p", ["fine"])]) == [[0.04]]  # the server keeps serving


def test_a_server_of_another_prm_is_refused(served):
    server, _ = served
    with pytest.raises(ConfigError, match="serves prm=equation_checker, but this run asks"):
        RemotePRM(prm_config("rlhflow_8b", server_url=server.url))


def test_a_prm_reading_the_generators_text_needs_a_server_of_the_same_generator():
    class LinesPRM(LengthPRM):
        reads_step_delimiter = True  # as Skywork's: its input is the generator's text

    cfg = prm_config("equation_checker")
    server = PRMServer(LinesPRM(), cfg, "127.0.0.1", free_port(), step_delimiter="\n\n")
    server.start()
    try:
        same = ModelConfig(step_delimiter="\n\n")
        RemotePRM(prm_config("equation_checker", server_url=server.url), model=same)
        with pytest.raises(ConfigError, match=r"joins steps with '\\n\\n'.*writes '\\n'"):
            RemotePRM(
                prm_config("equation_checker", server_url=server.url),
                model=ModelConfig(step_delimiter="\n"),
            )
    finally:
        server.shutdown()
    plain = PRMServer(LengthPRM(), cfg, "127.0.0.1", free_port(), step_delimiter="\n\n")
    assert plain.health()["step_delimiter"] is None  # other PRMs do not depend on it


def test_unreachable_server_fails_before_the_model_loads(tmp_path, monkeypatch):
    import hotncold.engine.vllm_engine

    def no_engine(*args, **kwargs):
        raise AssertionError("the generator must not load when the PRM server is down")

    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", no_engine)
    url = f"http://127.0.0.1:{free_port()}"
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        dataset=DatasetConfig(per_level=1, levels=[1]),
        prm=prm_config("rlhflow_8b", server_url=url),
    )
    with pytest.raises(ConfigError, match="no PRM server answers") as info:
        execute(cfg)
    assert "\n" not in str(info.value) and "python -m hotncold.prm_server" in str(info.value)


def test_cli_unreachable_server_is_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    proc = run_module(
        "hotncold",
        "prm=rlhflow_8b",
        f"prm.server_url={url}",
        "dataset.per_level=1",
        f"hydra.run.dir={tmp_path}/run",
        timeout=120,
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert errors[-1].startswith(f"hotncold: error: prm.server_url={url}: no PRM server answers")
    assert "Traceback" not in proc.stderr


def test_generator_leaves_room_for_an_in_process_prm_of_unknown_size():
    # No config.json to size them from: the fixed split (the PRM's share, the generator the
    # rest of 0.95). Sizing from the weights is tested in tests/test_gpu_plan.py.
    from hotncold.prm.registry import plan_engines

    def plan(model, prm):
        return plan_engines(model, prm, card_bytes=80 * 2**30, read=lambda path: None)

    model = ModelConfig(path="some/generator", gpu_memory_utilization=0.9)
    own = prm_config("rlhflow_8b", model_path="RLHFlow/x", gpu_memory_utilization=0.4)
    assert plan(model, own).model.gpu_memory_utilization == pytest.approx(0.55)
    unset = prm_config("rlhflow_8b", model_path="RLHFlow/x")
    assert plan(model, unset).prm.gpu_memory_utilization == pytest.approx(0.4)
    shared = prm_config("rlhflow_8b", model_path="some/generator")  # the generator itself
    assert plan(model, shared).model == model
    remote = prm_config("rlhflow_8b", server_url="http://x:1")
    assert plan(model, remote).model == model
    small = ModelConfig(path="g", gpu_memory_utilization=0.3)
    assert plan(small, own).model == small


# --- the real thing: `python -m hotncold.prm_server` and a real run through it ---------------


@pytest.mark.slow
def test_a_real_run_scores_through_the_server(real_engine, tmp_path):
    from hotncold.testing import tiny_models as tiny

    path = tiny.qwen_process_reward(tmp_path / "qwen_prm")
    port = free_port()
    prm_args = [
        "prm=qwen_math_prm_7b",
        f"prm.model_path={path}",
        "prm.max_model_len=1024",
        "prm.cpu_kv_cache_gib=0.25",
        "prm.block_size=32",
    ]
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hotncold.prm_server",
            *prm_args,
            f"port={port}",
            # two jobs released together ask within milliseconds; a window far wider than that
            # makes the merge below a count to check, not a race
            "batch_wait_ms=3000",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            assert server.poll() is None, Path(tmp_path / "server.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the PRM server did not come up"
                time.sleep(1)

        prm = prm_config(
            "qwen_math_prm_7b", model_path=str(path), server_url=url, agg_strategy="last"
        )
        cfg = Config(
            out_dir=str(tmp_path / "run"),
            n=2,
            model=tiny_model_config(ModelConfig),
            dataset=DatasetConfig(per_level=1, levels=[1, 2]),
            prm=prm,
        )
        execute(cfg)
        recs = [
            json.loads(x) for x in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()
        ]
        assert len(recs) == 2
        for rec in recs:
            for c in rec["completions"]:
                assert len(c["step_scores"]) == len(c["steps"])
                assert all(0.0 < s < 1.0 for s in c["step_scores"])
                assert c["score"] == (c["step_scores"][-1] if c["steps"] else 0.0)
        info = json.loads((tmp_path / "run" / "run.json").read_text())
        health = json.loads(urllib.request.urlopen(f"{url}/health").read())
        assert info["totals"]["prm_tokens"] > 0
        assert info["totals"]["prm_tokens"] == health["stats"]["tokens"]
        assert health["stats"]["requests"] >= 1
        assert health["stats"]["merged_requests"] == 0  # one run: nothing to merge with

        # two jobs at once: their requests are merged into one shared engine call
        jobs = [build_prm(prm), build_prm(prm)]
        barrier = threading.Barrier(2)
        answers: dict[int, list] = {}

        def job(i: int) -> None:
            barrier.wait()
            answers[i] = jobs[i].score([(f"What is {i} + 1?", [f"{i} + 1 = {i + 1}.", "Done."])])

        threads = [threading.Thread(target=job, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(len(answers[i][0]) == 2 for i in range(2))
        after = json.loads(urllib.request.urlopen(f"{url}/health").read())["stats"]
        before = health["stats"]
        assert after["requests"] - before["requests"] == 2
        assert after["batches"] - before["batches"] == 1
        assert after["merged_requests"] == 2
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
            log.close()
    assert server.returncode == 0, Path(tmp_path / "server.log").read_text()[-3000:]
    with pytest.raises(ConfigError, match="no PRM server answers"):
        build_prm(prm)
