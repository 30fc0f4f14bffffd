"""What a person at the terminal sees of a run; everything else goes to its run.log only.

The terminal shows the run's own voice, the `hotncold` logger itself (what runs, the engine
starting, resuming, the results table), warnings and errors of any hotncold module, and one
progress bar per run. Step-by-step detail of the components (their `hotncold.<module>`
loggers at INFO), vLLM's logs and its processes' output (`hotncold.engine.process_output`)
and Python warnings go to run.log. `verbose=true` shows everything.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from hotncold.config import Config
from hotncold.engine import process_output
from hotncold.evaluation.metrics import METHODS
from hotncold.experiment.naming import approach_label
from hotncold.search.temperature import TemperaturePlan

HEADLINE = "weighted"
"""The selection method shown by level (the analyzer's headline method too)."""

_verbose = False


class TerminalFilter(logging.Filter):
    """The console handler's filter (hotncold/conf/hydra/job_logging/terminal.yaml)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _verbose or record.name == "hotncold":
            return True
        return record.name.startswith("hotncold.") and record.levelno >= logging.WARNING


def set_verbose(verbose: bool) -> None:
    """Show everything on the terminal (vLLM's output included), or only what a run says."""
    global _verbose
    _verbose = verbose
    process_output.set_verbose(verbose)
    logging.captureWarnings(True)  # a warning is a log record: in run.log, on screen if verbose


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}"


def results_table(cfg: Config, metrics: dict[str, Any], info: dict[str, Any]) -> str:
    """What a finished run prints: accuracy by N and method, by level at the headline method,
    its cost, its directory, and the command that analyses it."""
    ns = [str(k) for k in metrics["budgets"]]
    overall = metrics["overall"]
    lines = [_headline(cfg, overall["num_problems"], info)]
    lines.append(f"{'accuracy (%)':<14}" + "".join(f"{'N=' + k:>7}" for k in ns))
    for method in METHODS:
        lines.append(f"{method:<14}" + "".join(f"{_pct(overall[method][k]):>7}" for k in ns))
    levels = metrics.get("by_level") or {}
    if len(levels) > 1:
        lines.append(f"{HEADLINE} by level:")
        for level, part in levels.items():
            cells = "".join(f"{_pct(part[HEADLINE][k]):>7}" for k in ns)
            lines.append(f"  {'level ' + level:<12}{cells}")
    lines.append(f"run directory: {cfg.out_dir}")
    hub = info.get("hub") or {}
    if hub.get("url") or hub.get("error"):
        lines.append(f"hub: {hub.get('url') or 'push failed: ' + str(hub.get('error'))}")
    lines.append(f"next: python -m hotncold.analyze {cfg.out_dir}")
    return "\n".join(lines)


def results_line(cfg: Config, metrics: dict[str, Any], info: dict[str, Any]) -> str:
    """What a finished job of a sweep prints: one line (the sweep's analysis has the tables)."""
    top = str(metrics["budgets"][-1])
    overall = metrics["overall"]
    scores = ", ".join(f"{m} {100 * overall[m][top]:.1f}" for m in (HEADLINE, "pass"))
    return f"{_headline(cfg, overall['num_problems'], info)}: {scores} at N={top} (%)"


def _headline(cfg: Config, problems: int, info: dict[str, Any]) -> str:
    """`best_of_n T0.4 n=8: 20 problems in 1 min 12 s, 14.2k tokens generated at 245/s`."""
    session = (info.get("sessions") or [{}])[-1]
    tokens = int(session.get("generated_tokens") or 0)
    seconds = float(session.get("generate_s") or 0)
    label = f"{approach_label(asdict(cfg))} {TemperaturePlan.from_config(cfg.temperature).tag()}"
    head = f"{label} n={cfg.n}: {problems} problems in {duration(session.get('wall_s') or 0)}"
    if tokens and seconds:
        head += f", {tokens / 1000:.1f}k tokens generated at {tokens / seconds:.0f}/s"
    return head


def duration(seconds: float) -> str:
    """`48 s`, `3 min 05 s`, `1 h 02 min`."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
