"""The approaches `approach.name` chooses, and the rules of the `approach` settings.

Each approach is a class with `solve(problems, prompts, ctx)` (`hotncold.search.base.Approach`),
imported only when built. `check_approach` is run by `hotncold.experiment.validate` before
anything loads.
"""

from __future__ import annotations

import importlib

from hotncold.config import ApproachConfig, ConfigError
from hotncold.search import schedule
from hotncold.search.base import Approach

REGISTRY = {
    "best_of_n": "hotncold.search.best_of_n:BestOfN",
    "beam_search": "hotncold.search.beam_search:BeamSearch",
    "dvts": "hotncold.search.dvts:DVTS",
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
    if a.name != "best_of_n":
        if a.beam_width < 1:
            raise ConfigError(f"approach.beam_width={a.beam_width}: set it to 1 or more")
        if n % a.beam_width:
            raise ConfigError(
                f"n={n} is not divisible by approach.beam_width={a.beam_width}; "
                "choose n as a multiple of beam_width"
            )
        if a.num_iterations < 1:
            raise ConfigError("approach.num_iterations must be at least 1")
        if a.lookahead < 0:
            raise ConfigError("approach.lookahead must be 0 or more")
        if a.scheduler not in schedule.SCHEDULERS:
            raise ConfigError(
                f"approach.scheduler={a.scheduler!r} is unknown; use one of "
                f"{', '.join(schedule.SCHEDULERS)}"
            )
