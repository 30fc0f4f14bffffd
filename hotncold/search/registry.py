"""Test-time search approaches behind one interface: `Approach.solve(problems, prompts, ctx)`."""

from __future__ import annotations

import importlib

from hotncold.search.base import Approach, SearchContext

REGISTRY = {
    "best_of_n": "hotncold.search.best_of_n:BestOfN",
    "beam_search": "hotncold.search.beam_search:BeamSearch",
    "dvts": "hotncold.search.dvts:DVTS",
}


def build_approach(name: str) -> Approach:
    if name not in REGISTRY:
        raise ValueError(f"approach {name!r} is not available; use one of {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["Approach", "SearchContext", "build_approach"]
