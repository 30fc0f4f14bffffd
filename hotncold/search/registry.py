"""The approaches `approach.name` chooses, and the rules of the `approach` settings.

Each approach is a class with `solve(problems, prompts, ctx)` (`hotncold.search.base.Approach`),
imported only when built. `check_approach` is run by `hotncold.experiment.validate` before
anything loads.
"""

from __future__ import annotations

import importlib
import math

from hotncold.config import (
    APPROACH_SCHEMAS,
    AdaptiveBoNConfig,
    ApproachConfig,
    ConfigError,
    ParticleFilterConfig,
)
from hotncold.search import schedule
from hotncold.search.base import Approach
from hotncold.search.resampling import SCHEMES, SIGNALS
from hotncold.search.temperature import SCHEDULES

ADAPTIVE_SIGNALS = ("majority", "entropy", "prm_spread")
"""`approach.signal` of adaptive_bon (hotncold.search.adaptive_bon reads them)."""
UNANSWERED = ("ignore", "distinct")
"""`approach.unanswered` of adaptive_bon (hotncold.search.adaptive_bon reads them)."""
STEP_LEVEL = ("beam_search", "dvts", "particle_filter")
"""Approaches that grow solutions one step at a time (`num_iterations`, `lookahead`)."""

REGISTRY = {
    "best_of_n": "hotncold.search.best_of_n:BestOfN",
    "beam_search": "hotncold.search.beam_search:BeamSearch",
    "dvts": "hotncold.search.dvts:DVTS",
    "adaptive_bon": "hotncold.search.adaptive_bon:AdaptiveBestOfN",
    "particle_filter": "hotncold.search.particle_filter:ParticleFilter",
}
"""name -> "module:class"; each class is built without arguments (the context carries all)."""
APPROACHES = tuple(REGISTRY)


def build_approach(name: str) -> Approach:
    if name not in REGISTRY:
        raise ValueError(f"approach {name!r} is not available; use one of {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def check_approach(a: ApproachConfig, n: int) -> None:
    """Raise ConfigError naming the fix for an approach setting the search could not follow."""
    if a.name not in APPROACHES:
        raise ConfigError(
            f"approach.name={a.name!r} is unknown; use one of {', '.join(APPROACHES)}"
        )
    schema = APPROACH_SCHEMAS.get(a.name, ApproachConfig)
    if type(a) is not schema:
        raise ConfigError(
            f"approach.name={a.name!r} was set over another approach's option; choose it as "
            f"an option instead: approach={a.name}"
        )
    if a.name in STEP_LEVEL:
        if a.num_iterations < 1:
            raise ConfigError("approach.num_iterations must be at least 1")
        if a.lookahead < 0:
            raise ConfigError("approach.lookahead must be 0 or more")
    if isinstance(a, AdaptiveBoNConfig):
        _check_adaptive(a, n)
    if isinstance(a, ParticleFilterConfig):
        _check_resampling(a)
    if a.name in ("beam_search", "dvts"):
        if a.beam_width < 1:
            raise ConfigError(f"approach.beam_width={a.beam_width}: set it to 1 or more")
        if n % a.beam_width:
            raise ConfigError(
                f"n={n} is not divisible by approach.beam_width={a.beam_width}; "
                "choose n as a multiple of beam_width"
            )
        if a.scheduler not in schedule.SCHEDULERS:
            raise ConfigError(
                f"approach.scheduler={a.scheduler!r} is unknown; use one of "
                f"{', '.join(schedule.SCHEDULERS)}"
            )
        if a.open_batches < 1:
            raise ConfigError(
                f"approach.open_batches={a.open_batches}: set it to 1 or more (batches of "
                "problems open at once under approach.scheduler=async)"
            )


def _check_adaptive(a: AdaptiveBoNConfig, n: int) -> None:
    if a.signal not in ADAPTIVE_SIGNALS:
        raise ConfigError(
            f"approach.signal={a.signal!r} is unknown; use one of {', '.join(ADAPTIVE_SIGNALS)}"
        )
    if a.unanswered not in UNANSWERED:
        raise ConfigError(
            f"approach.unanswered={a.unanswered!r} is unknown; use one of {', '.join(UNANSWERED)}"
        )
    if not 0 < a.probe_fraction < 1:
        raise ConfigError(
            f"approach.probe_fraction={a.probe_fraction:g} must be between 0 and 1 (e.g. 0.25)"
        )
    probe = max(2, math.ceil(a.probe_fraction * n - 1e-9))
    if probe >= n:
        raise ConfigError(
            f"adaptive_bon's probe takes {probe} of n={n} samples, leaving none for the rest; "
            "raise n (at least 3) or lower approach.probe_fraction"
        )
    if a.probe_temperature is not None and not (
        math.isfinite(a.probe_temperature) and a.probe_temperature >= 0
    ):
        raise ConfigError(f"approach.probe_temperature={a.probe_temperature} must be >= 0")
    if a.thresholds is not None:
        ts = list(a.thresholds)
        if any(not 0 <= t <= 1 for t in ts) or ts != sorted(ts):
            raise ConfigError(
                f"approach.thresholds={ts} must be increasing values in [0, 1], e.g. [0.25,0.5]"
            )


def _check_resampling(a: ParticleFilterConfig) -> None:
    r = a.resampling
    if r.signal not in SIGNALS:
        raise ConfigError(
            f"approach.resampling.signal={r.signal!r} is unknown; use one of {', '.join(SIGNALS)}"
        )
    if r.scheme not in SCHEMES:
        raise ConfigError(
            f"approach.resampling.scheme={r.scheme!r} is unknown; use one of {', '.join(SCHEMES)}"
        )
    if not (math.isfinite(r.tau) and r.tau > 0):
        raise ConfigError(
            f"approach.resampling.tau={r.tau} must be positive (1 is its_hub's, small follows "
            "the PRM greedily)"
        )
    if r.schedule not in SCHEDULES:
        raise ConfigError(
            f"approach.resampling.schedule={r.schedule!r} is unknown; use one of "
            f"{', '.join(SCHEDULES)}"
        )
    if r.schedule == "constant" and (r.start != 1.0 or r.end != 1.0):
        raise ConfigError(
            "approach.resampling.start/end have no effect with resampling.schedule=constant; "
            "set approach.resampling.schedule=linear, cosine or switch"
        )
    if r.schedule != "constant":
        if not all(math.isfinite(x) and x > 0 for x in (r.start, r.end)):
            raise ConfigError(
                "approach.resampling.start and end must be positive factors (tau stays > 0)"
            )
        if r.horizon < 1 or r.switch_at < 1:
            raise ConfigError("approach.resampling.horizon and switch_at must be at least 1 step")
