"""The client of a PRM server (`prm.server_url`): a PRM like any other to the search code.

Its prefix cache works locally (only new steps go over the wire); the server reports the model
tokens each item cost, so run.json's `prm_tokens` means the same as with an in-process PRM.
Written on `urllib` (standard library): two JSON routes need no HTTP client dependency.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from hotncold.config import ConfigError, ModelPRMConfig, PRMConfig
from hotncold.prm.base import PRM, ItemScores, PendingScore

HEALTH_TIMEOUT_S = 10.0
SCORE_TIMEOUT_S = 3600.0
"""A scoring request waits behind other jobs' batches on a busy server; an hour means dead."""


def _request(url: str, body: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read()).get("error", "")
        except ValueError:
            detail = ""
        raise RuntimeError(f"PRM server {url} answered {error.code}: {detail}") from None


def check_server(cfg: PRMConfig) -> dict[str, Any]:
    """The server's health answer; ConfigError (one line) if it is down or serves another PRM."""
    url = str(cfg.server_url).rstrip("/")
    try:
        health = _request(f"{url}/health", None, HEALTH_TIMEOUT_S)
    except (urllib.error.URLError, OSError, RuntimeError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(
            f"prm.server_url={url}: no PRM server answers ({reason}); start one with "
            f"`python -m hotncold.prm_server prm={cfg.name}` or drop prm.server_url"
        ) from None
    served = health.get("prm", {})
    if served.get("name") != cfg.name:
        raise ConfigError(
            f"prm.server_url={url} serves prm={served.get('name')}, but this run asks for "
            f"prm={cfg.name}; point it at a server of prm={cfg.name}"
        )
    path = cfg.model_path if isinstance(cfg, ModelPRMConfig) else None
    if path and served.get("model_path") != path:
        raise ConfigError(
            f"prm.server_url={url} serves weights {served.get('model_path')}, but this run asks "
            f"for prm.model_path={path}"
        )
    return health


class RemotePRM(PRM):
    """Scores through a PRM server."""

    def __init__(
        self, cfg: PRMConfig, engine: Any = None, model: Any = None, prompt: Any = None
    ) -> None:
        super().__init__(batch_size=cfg.batch_size, incremental=cfg.incremental)
        self.name = cfg.name
        self.url = str(cfg.server_url).rstrip("/")
        health = check_server(cfg)
        self.served = health["prm"]
        joins = health.get("step_delimiter")
        if joins is not None and model is not None and model.step_delimiter != joins:
            raise ConfigError(
                f"prm.server_url={self.url} joins steps with {joins!r} (its model's "
                f"step_delimiter), but this run's generator writes {model.step_delimiter!r}; "
                f"start the server with this run's model (model=... of the run)"
            )

    def _score_new(self, items: Sequence[PendingScore]) -> list[ItemScores]:
        body = {
            "items": [
                {"problem": item.problem, "steps": list(item.steps), "start": item.start}
                for item in items
            ]
        }
        try:
            answer = _request(f"{self.url}/score", body, SCORE_TIMEOUT_S)
        except (urllib.error.URLError, OSError) as error:
            raise RuntimeError(
                f"PRM server {self.url} stopped answering ({getattr(error, 'reason', error)})"
            ) from None
        return [ItemScores(s, int(t)) for s, t in zip(answer["scores"], answer["tokens"])]
