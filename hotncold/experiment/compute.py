"""What a run's compute costs in FLOPs, the generator and the verifier apart, per problem.

Accuracy at equal generated tokens hides the verifier: beside a 1B generator an 8B PRM does
most of the work. So every problem's record carries FLOPs, FLOPs ~ 2 x parameters x tokens:

- Parameters come from each model's own config.json (`engine.model_facts`), split by
  `token_cost`: the input embedding is a lookup and never counts; the vocabulary projection
  (the LM head, tied or not) counts only where logits are computed, every other parameter at
  every token processed.
- Generator tokens: each sample's prompt minus what vLLM found in its prefix cache, plus the
  tokens it generated (logits at each generated token). A prefix shared across problems (the
  system prompt) is paid by the problem that computed it first.
- PRM tokens: as the PRM counts them (`ItemScores.tokens`: computed, cache hits excluded);
  logits where its kind reads them (`PRMKind.logits`: per scored step, per token, or none).
- A model-free verifier (the equation checker) costs 0 FLOPs.
- Left out: attention over the context (about context / (12 x hidden) of the rest per token:
  8% at a 2k context for a 2048-wide model), norms and activations, and recomputation after
  vLLM preempts a sequence. The figures compare configurations; they are not a hardware count.

A model whose config.json cannot be read here (a PRM served from another machine and never
cached here) or whose architecture `parameter_count` does not know gets `null` FLOPs, said
once in the log; nothing is guessed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hotncold.config import Config
from hotncold.engine import vllm_engine
from hotncold.engine.model_facts import parameter_count, read_config, token_cost
from hotncold.engine.requests import Charge
from hotncold.prm.base import PRM, PRMCharge
from hotncold.prm.registry import KINDS, model_path, shares_generator

log = logging.getLogger("hotncold")


@dataclass(frozen=True)
class ModelCost:
    """The FLOPs of one model per token processed and per logits row computed."""

    path: str
    """The weights' folder or hub id whose config.json gave the counts."""
    body: int
    """Parameters multiplied at every token (`TokenCost.body`)."""
    vocab: int
    """Parameters of the vocabulary projection (`TokenCost.vocab`)."""

    def flops(self, tokens: int, logit_rows: int) -> float:
        return 2.0 * (self.body * tokens + self.vocab * logit_rows)


def model_cost(path: str | None) -> ModelCost | None:
    """The cost of the model at `path` from its config.json, or None (logged) when unknown."""
    if path is None:
        return None
    config = read_config(path)
    params = parameter_count(config) if config is not None else None
    if params is None:
        reason = "no config.json here" if config is None else "an architecture not counted"
        log.warning("FLOPs of %s are not counted (%s): records carry null", path, reason)
        return None
    cost = token_cost(params)
    return ModelCost(path=str(path), body=cost.body, vocab=cost.vocab)


@dataclass(frozen=True)
class RunCosts:
    """How a run's FLOPs are counted: one `ModelCost` per model, or None where unknown."""

    generator: ModelCost | None
    prm: ModelCost | None
    prm_model_free: bool
    """The PRM loads no model: 0 FLOPs, not unknown."""
    prm_logits: str
    """Where the PRM computes vocabulary logits (`PRMKind.logits`)."""

    def problem(self, gen: Charge, prm: PRMCharge) -> dict[str, Any]:
        """The `compute` entry of one problem's record."""
        gen_flops = (
            self.generator.flops(gen.prompt_tokens + gen.generated_tokens, gen.generated_tokens)
            if self.generator is not None
            else None
        )
        rows = {"step": prm.steps, "token": prm.tokens}.get(self.prm_logits, 0)
        if self.prm_model_free:
            prm_flops: float | None = 0.0
        elif self.prm is not None:
            prm_flops = self.prm.flops(prm.tokens, rows)
        else:
            prm_flops = None
        total = None if gen_flops is None or prm_flops is None else gen_flops + prm_flops
        return {
            "prompt_tokens": gen.prompt_tokens,
            "generated_tokens": gen.generated_tokens,
            "prm_tokens": prm.tokens,
            "prm_steps_scored": prm.steps,
            "generator_flops": gen_flops,
            "prm_flops": prm_flops,
            "flops": total,
        }

    def describe(self) -> dict[str, Any]:
        """What run.json says about how FLOPs were counted."""

        def one(cost: ModelCost | None) -> dict[str, Any] | None:
            if cost is None:
                return None
            return {"path": cost.path, "body_parameters": cost.body, "vocab_parameters": cost.vocab}

        return {
            "formula": "2 x (body_parameters x tokens + vocab_parameters x logit rows)",
            "generator": one(self.generator),
            "prm": "model-free (0 FLOPs)" if self.prm_model_free else one(self.prm),
            "prm_logits": self.prm_logits,
        }


def run_costs(cfg: Config, engine: Any, prm: PRM) -> RunCosts:
    """The costs of this run's generator (its engine's weights) and PRM."""
    kind = KINDS.get(cfg.prm.name)
    model_free = kind is not None and kind.model_free  # served or not
    path = getattr(engine, "path", None) or vllm_engine.resolve_model_path(cfg.model.path)
    generator = model_cost(path)
    prm_cost = None
    if not model_free:
        if shares_generator(cfg.prm, cfg.model):
            prm_cost = generator
        else:
            prm_engine = getattr(prm, "engine", None)  # the weights it really runs
            prm_cost = model_cost(getattr(prm_engine, "path", None) or model_path(cfg.prm))
    return RunCosts(
        generator=generator,
        prm=prm_cost,
        prm_model_free=model_free,
        prm_logits=kind.logits if kind is not None else "none",
    )
