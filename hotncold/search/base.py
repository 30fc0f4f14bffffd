"""What every approach shares: the completion record, the context it runs in, its interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from hotncold.config import ApproachConfig, ModelConfig
from hotncold.data import Problem
from hotncold.engine.requests import Engine
from hotncold.prm.base import PRM
from hotncold.search.temperature import TemperaturePlan


@dataclass
class Completion:
    """One candidate solution with everything metrics and analysis read from it."""

    text: str
    steps: list[str]
    step_scores: list[float]
    step_temperatures: list[float]
    num_tokens: int
    finish_reason: str
    """`eos` (the model ended it), `length` (token limit or full context), `empty_step` (the
    model wrote nothing but step delimiters), or `partial` (a step-level
    search stopped growing it: a DVTS sibling of its subtree's final pick)."""
    temperature: float | None = None
    """The temperature every token was sampled at; None when steps used different ones."""
    group: int = 0
    """Unit of subset sampling: independent samples each have their own, DVTS subtrees share
    one so that subsets for N < n keep them together."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.finish_reason in ("eos", "empty_step")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["finished"] = self.finished
        return out


@dataclass
class SearchContext:
    """Everything an approach may use; the approach owns no engine, PRM or config of its own."""

    engine: Engine
    prm: PRM
    plan: TemperaturePlan
    model: ModelConfig
    approach: ApproachConfig
    n: int
    seed: int
    agg_strategy: str = "min"
    """How step scores rank solutions during the search and in its final choice
    (`prm.agg_strategy`)."""


class Approach(Protocol):
    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        """`ctx.n` completions for each problem, in the order small-N metrics should read them."""
        ...
