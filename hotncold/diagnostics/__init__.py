"""`python -m hotncold.doctor`: the first thing to run on a new node, one screen of checks.

The platform (CPU or GPU, driver and CUDA, the installed vLLM against the supported range, GPU
memory), the hub (what the composed config loads: cached, readable, gated), whether the
composed generator and PRM fit in memory, and a smoke run of every engine path on tiny models
(`smoke`). Exit status 0 only when no check fails; checks that cannot be asked here (the hub
from an offline node) are skipped, saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hotncold.config import Config
from hotncold.diagnostics import smoke
from hotncold.diagnostics.checks import (
    FAIL,
    SKIP,
    Check,
    environment_line,
    hub_checks,
    memory_checks,
    platform_checks,
)


def run_doctor(
    cfg: Config, with_smoke: bool = True, echo: Callable[[str], None] = print
) -> list[Check]:
    """Run every check on `cfg`, printing each line as it completes."""
    for name in ("vllm", "hotncold", "transformers", "httpx"):  # one screen: warnings only
        logging.getLogger(name).setLevel(logging.WARNING)
    echo(f"hotncold doctor: model={cfg.model.path} prm={cfg.prm.name} cluster={cfg.cluster.name}")
    echo(environment_line())
    checks: list[Check] = []
    groups = [platform_checks, lambda: hub_checks(cfg), lambda: memory_checks(cfg)]
    if with_smoke:
        groups.append(smoke.run)
    for group in groups:
        for check in group():
            checks.append(check)
            echo(check.line())
    failed = sum(c.status == FAIL for c in checks)
    skipped = sum(c.status == SKIP for c in checks)
    echo(
        f"doctor: {len(checks) - failed - skipped} passed, {failed} failed, {skipped} skipped"
        + ("" if with_smoke else " (smoke run not asked: --no-smoke)")
    )
    return checks
