"""One PRM served over HTTP to many runs: load a 7-8B PRM once per node, not once per job.

Protocol (JSON over HTTP):
- `GET /health` -> `{"status": "ok", "prm": <PRMConfig as a dict>, "stats": {...}}`
- `POST /score` with `{"items": [{"problem": str, "steps": [str], "start": int}]}` ->
  `{"scores": [[float]], "tokens": [int]}`: scores of `steps[start:]` of each item and the
  model tokens processed for it. Clients keep their own prefix cache and send only new steps;
  the engine's prefix cache on the server makes the known prefix cost nothing.
- errors -> a non-200 status with `{"error": "..."}`.

Batching: HTTP handler threads only enqueue work; one worker thread owns the PRM (engines are
not thread-safe) and, once a request arrives, waits `batch_wait_ms` for concurrent ones and
scores all of them in one `PRM.compute` call, so jobs that score at the same time share engine
batches. Written on the standard library (`http.server`): the protocol is two routes, and a web
framework would add a dependency for nothing.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from omegaconf import OmegaConf

from hotncold.config import ConfigError, PRMConfig, PRMServerConfig
from hotncold.engine import hf_cache, machine, vllm_engine
from hotncold.engine.rules import check_model, check_prompt
from hotncold.engine.weights import check_model_path
from hotncold.prm.base import PRM, ItemScores, PendingScore
from hotncold.prm.registry import (
    build_prm,
    check_prm,
    check_prm_weights,
    hub_needs,
    model_path,
    plan_engines,
    shares_generator,
    typed_merge,
)

log = logging.getLogger(__name__)


@dataclass
class _Job:
    items: list[PendingScore]
    done: threading.Event = field(default_factory=threading.Event)
    result: list[ItemScores] | None = None
    error: str | None = None


@dataclass
class ServerStats:
    requests: int = 0
    """POST /score requests answered."""
    batches: int = 0
    """PRM calls made: fewer than requests when concurrent requests were merged."""
    merged_requests: int = 0
    """Requests that shared a PRM call with another."""
    items: int = 0


class PRMServer:
    """Serves `prm` on (host, port) until `shutdown()`."""

    def __init__(
        self,
        prm: PRM,
        cfg: PRMConfig,
        host: str,
        port: int,
        batch_wait_ms: float = 5.0,
        step_delimiter: str | None = None,
    ) -> None:
        self.prm = prm
        self.prm.stats.keep_accounts = False  # the clients account for their own problems
        self.cfg = cfg
        self.step_delimiter = step_delimiter if prm.reads_step_delimiter else None
        self.batch_wait = batch_wait_ms / 1000
        self.stats = ServerStats()
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="prm-batcher", daemon=True)
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        self._worker.start()
        log.info("serving prm=%s at %s", self.cfg.name, self.url)
        try:
            self.httpd.serve_forever()
        finally:
            self._queue.put(None)
            self._worker.join(timeout=60)  # let a batch in flight finish before teardown
            self.httpd.server_close()

    def start(self) -> threading.Thread:
        """Serve from a background thread (tests, benchmarks)."""
        thread = threading.Thread(target=self.serve_forever, name="prm-server", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self.httpd.shutdown()

    def pending(self) -> int:
        """Requests queued for the batcher and not yet taken into a batch."""
        return self._queue.qsize()

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "prm": asdict(self.cfg),
            # PRMs whose input is the generator's text: the delimiter its steps are joined by
            "step_delimiter": self.step_delimiter,
            "stats": {
                **{k: v for k, v in asdict(self.prm.stats).items() if k != "accounts"},
                **asdict(self.stats),
                "pending": self.pending(),
            },
        }

    def score(self, items: list[PendingScore]) -> list[ItemScores]:
        """Queue one request's items and wait for the batcher to score them."""
        job = _Job(items)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise RuntimeError(job.error)
        assert job.result is not None
        return job.result

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            deadline = time.monotonic() + self.batch_wait
            while (left := deadline - time.monotonic()) > 0:
                try:
                    more = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                jobs.append(more)
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        merged = [item for job in jobs for item in job.items]
        try:
            results = self.prm.compute(merged)
        except Exception as error:  # report to every waiting client, keep serving
            log.exception("scoring failed")
            for job in jobs:
                job.error = f"{type(error).__name__}: {error}"
                job.done.set()
            return
        self.stats.batches += 1
        self.stats.requests += len(jobs)
        self.stats.items += len(merged)
        if len(jobs) > 1:
            self.stats.merged_requests += len(jobs)
        at = 0
        for job in jobs:
            job.result = results[at : at + len(job.items)]
            at += len(job.items)
            job.done.set()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/health":
                    self._reply(200, server.health())
                else:
                    self._reply(404, {"error": f"no route {self.path}; use /health or /score"})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/score":
                    self._reply(404, {"error": f"no route {self.path}; POST /score"})
                    return
                try:
                    length = int(self.headers.get("Content-Length", 0))
                    body = json.loads(self.rfile.read(length))
                    items = [
                        PendingScore(
                            str(i["problem"]), tuple(map(str, i["steps"])), int(i["start"])
                        )
                        for i in body["items"]
                    ]
                    for item in items:
                        if not 0 <= item.start < len(item.steps):
                            raise ValueError(f"start={item.start} outside the item's steps")
                except (ValueError, KeyError, TypeError) as error:
                    self._reply(400, {"error": f"bad request: {error}"})
                    return
                try:
                    results = server.score(items)
                except RuntimeError as error:
                    self._reply(500, {"error": str(error)})
                    return
                self._reply(
                    200,
                    {"scores": [r.scores for r in results], "tokens": [r.tokens for r in results]},
                )

        return Handler


def validate_server(cfg: PRMServerConfig) -> None:
    """The rules of `python -m hotncold.prm_server`: its own settings, then the generator's and
    the PRM's own rules (run before anything loads)."""
    if cfg.prm.server_url is not None:
        raise ConfigError("a PRM server cannot itself use prm.server_url; drop it")
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"port={cfg.port} is not a TCP port")
    check_model(cfg.model)
    check_prompt(cfg.prompt)
    check_prm(cfg.prm)  # alone on its machine: no memory split with a generator


def serve(cfg: Any) -> None:
    """Load the PRM `cfg` names and serve it until interrupted."""
    if not isinstance(cfg, PRMServerConfig):
        cfg = OmegaConf.to_object(typed_merge(PRMServerConfig(prm=PRMConfig()), cfg))
    validate_server(cfg)
    logging.getLogger("hotncold").setLevel(logging.INFO)
    machine.check_vllm()
    on_generator = shares_generator(cfg.prm, cfg.model)
    needs = hub_needs(cfg.prm, cfg.model)
    if on_generator and hf_cache.is_hub_id(cfg.model.path):
        needs.append(hf_cache.Need(cfg.model.path, "model", "model.path"))
    overrides = [f"prm={cfg.prm.name}"] + (
        [f"prm.model_path={model_path(cfg.prm)}"] if model_path(cfg.prm) else []
    )
    hf_cache.check_cached(needs, "python -m hotncold.prefetch " + " ".join(overrides))
    if on_generator:  # bad weights fail in one line before anything loads
        check_model_path(cfg.model.path, "model.path", cfg.model.engine_kwargs.get("download_dir"))
    check_prm_weights(cfg.prm, cfg.model)
    # Alone on its card: the PRM's engine (or the generator's, for PRMs that read it) sized
    # from its weights, its context fitted to its config.json, before anything loads.
    card = None if vllm_engine.on_cpu() else next((g.memory_bytes for g in machine.gpus()), 0)
    plan = plan_engines(cfg.model, cfg.prm, card, with_generator=on_generator)
    engine = vllm_engine.get_engine(plan.model) if on_generator else None
    prm = build_prm(plan.prm, engine=engine, model=plan.model, prompt=cfg.prompt)
    server = PRMServer(
        prm, cfg.prm, cfg.host, cfg.port, cfg.batch_wait_ms, cfg.model.step_delimiter
    )
    # SIGTERM (scancel, kill) stops as cleanly as Ctrl-C: shutdown() must come from a thread
    # other than the one in serve_forever.
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()
    )
    print(f"PRM server: prm={cfg.prm.name} at {server.url} (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        vllm_engine.close_engines()
    # The server has nothing left to save, but native threads of vLLM's CPU engine can abort the
    # interpreter's own teardown ("terminate called without an active exception", exit -6), which
    # reads as a crash to whatever supervises the server (Slurm, systemd, tests): leave without it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
