"""What every approach shares: the completion record, the context it runs in, its interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from hotncold.config import ApproachConfig, ModelConfig
from hotncold.data import Problem
from hotncold.engine.requests import Engine
from hotncold.prm.base import PRM
from hotncold.search.temperature import TemperaturePlan

FINISHED = ("eos", "answer")
"""Finish reasons of a solution that is complete: the model ended it, or its answer was."""


@dataclass
class Completion:
    """One candidate solution with everything metrics and analysis read from it."""

    text: str
    steps: list[str]
    step_scores: list[float]
    step_temperatures: list[float]
    num_tokens: int
    finish_reason: str
    """`eos` (the model ended it), `answer` (the answer stop, `approach.answer_stop`, ended it
    right after its first complete `\\boxed{...}`), `length` (token limit or full context),
    `empty_step` (the model wrote nothing but step delimiters where a step was due), or
    `partial` (a step-level search stopped growing it: a DVTS sibling of its subtree's final
    pick). `eos` and `answer` are finished (`FINISHED`)."""
    temperature: float | None = None
    """The temperature every token was sampled at; None when steps used different ones."""
    group: int = 0
    """Unit of subset sampling: independent samples each have their own, DVTS subtrees share
    one so that subsets for N < n keep them together."""
    extra: dict[str, Any] = field(default_factory=dict)
    token_logprobs: list[float] | None = None
    """With `output.logprobs`: the log-probability of every token of `text` as sampled, under
    the model's distribution before temperature (a step-level search's steps in order; its
    lookahead, never kept, is not included). None otherwise (and then left out of the record)."""
    token_ends: list[int] | None = None
    """With `token_logprobs`: each token's end in `text` (characters)."""

    @property
    def finished(self) -> bool:
        """The model ended the solution. An `empty_step` ending is not that: the model only
        repeated the delimiter, and the candidate added nothing."""
        return self.finish_reason in FINISHED

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["finished"] = self.finished
        for key in ("token_logprobs", "token_ends"):  # only runs that store them
            if out[key] is None:
                del out[key]
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
    logprobs: bool = False
    """Keep every completion's per-token log-probabilities (`output.logprobs`)."""


def sampling_extra(sampled: Mapping[float, int], allocations: int) -> dict[str, Any]:
    """The `extra` fields every approach records for a problem, on each of its completions:

    - `sampled_temperatures`: how many samples were drawn at each temperature (`%g` keys):
      Best-of-N's n completions; every candidate of a search, pruned ones included (one per
      request: a step, or the rest of a solution at the last iteration; lookahead, always
      greedy and never kept, is not counted);
    - `allocations`: how many separate allocations drew them (Best-of-N: 1; beam search: one
      per iteration; DVTS: one per subtree expansion). Each rounds every value's count by
      less than one sample, which bounds how far exact shares can drift (`analyze`).
    """
    return {
        "sampled_temperatures": {f"{t:g}": c for t, c in sorted(sampled.items())},
        "allocations": allocations,
    }


class Approach(Protocol):
    def solve(
        self, problems: Sequence[Problem], prompts: Sequence[str], ctx: SearchContext
    ) -> list[list[Completion]]:
        """`ctx.n` completions for each problem, in the order small-N metrics should read them."""
        ...
