"""PRMs read from next-token probabilities on vLLM's generate runner: RLHFlow, Math-Shepherd, and
any chat model as a judge.

Each new step becomes one request whose prompt ends where the model writes its verdict (see
`hotncold.prm.formats`); the engine returns the log-probabilities of the positive and negative
label tokens there (`logprob_token_ids`, exact whatever their rank), and the step's score is
P(+) / (P(+) + P(-)). The requests of one solution's steps, and of a solution grown by a step,
share their prefixes, so vLLM's prefix cache computes every token once: a beam grown by one step
costs that step's tokens plus at most one KV block. The tokens the engine actually computed are
counted in `stats.tokens`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hotncold.config import (
    GenerativePRMConfig,
    JudgePRMConfig,
    MathShepherdConfig,
    ModelConfig,
    PromptConfig,
)
from hotncold.engine import vllm_engine
from hotncold.engine.prompts import chat_template_for
from hotncold.prm.base import PRM, ItemScores, PendingScore
from hotncold.prm.formats import (
    FormatError,
    JudgeFormat,
    MathShepherdFormat,
    RLHFlowFormat,
    label_id,
)
from hotncold.prm.loading import check_length, load_tokenizer, prm_model_config


def two_way(positive: float, negative: float) -> float:
    """P(+) / (P(+) + P(-)) from their log-probabilities (a softmax over the two logits)."""
    return 1.0 / (1.0 + math.exp(negative - positive))


class GenerativePRM(PRM):
    """Scores each step from the label tokens' next-token log-probabilities."""

    def __init__(
        self,
        cfg: GenerativePRMConfig,
        engine: Any = None,
        model: ModelConfig | None = None,
        prompt: PromptConfig | None = None,
    ) -> None:
        super().__init__(batch_size=cfg.batch_size, incremental=cfg.incremental)
        self.name = cfg.name
        self.prompt = prompt
        # The generator's engine when `build_prm` passes it (the PRM reads the generator);
        # otherwise the PRM's own, started only once its tokenizer and format check out.
        self.engine = engine
        path = engine.path if engine is not None else str(cfg.model_path)
        self.tokenizer = load_tokenizer(path, cfg.trust_remote_code)
        self.labels = [
            label_id(self.tokenizer, cfg.positive_token),
            label_id(self.tokenizer, cfg.negative_token),
        ]
        self.format = self.make_format(cfg, model)
        if self.engine is None:
            self.engine = vllm_engine.get_engine(prm_model_config(cfg, str(cfg.model_path)))

    def make_format(self, cfg: GenerativePRMConfig, model: ModelConfig | None) -> Any:
        raise NotImplementedError

    def _score_new(self, items: Sequence[PendingScore]) -> list[ItemScores]:
        prompts, owners = [], []
        for index, item in enumerate(items):
            for prompt in self.format.prompts(item.problem, item.steps, item.start):
                check_length(prompt, self.engine.max_model_len, self.name)
                prompts.append(prompt)
                owners.append(index)
        # Always read the prefix cache: the requests of one solution's steps share it within
        # the call. Non-incremental mode empties it before each call (`_forget_prefixes`), so
        # each call reads every solution once, as a full forward pass per solution would.
        results = self.engine.label_logprobs(prompts, self.labels)
        scores: list[list[float]] = [[] for _ in items]
        tokens = [0] * len(items)
        for index, (logprobs, computed) in zip(owners, results):
            scores[index].append(two_way(*logprobs))
            tokens[index] += computed
        return [ItemScores(s, t) for s, t in zip(scores, tokens)]

    def _forget_prefixes(self) -> None:
        self.engine.reset_prefix_cache()


class RLHFlowPRM(GenerativePRM):
    """RLHFlow/Llama3.1-8B-PRM-*: each step a user turn, answered "+" or "-"."""

    def make_format(self, cfg: GenerativePRMConfig, model: ModelConfig | None) -> RLHFlowFormat:
        return RLHFlowFormat(self.tokenizer, cfg.positive_token)


class MathShepherdPRM(GenerativePRM):
    """peiyi9979/math-shepherd-mistral-7b-prm: "+" or "-" predicted at each step's "ки" tag."""

    def make_format(  # type: ignore[override]
        self, cfg: MathShepherdConfig, model: ModelConfig | None
    ) -> MathShepherdFormat:
        fmt = MathShepherdFormat(self.tokenizer, cfg.step_separator or "\n")
        check_card_ids(cfg, self.tokenizer, self.labels, fmt.tag_id)
        return fmt


MATH_SHEPHERD_CARD = "peiyi9979/math-shepherd-mistral-7b-prm"
MATH_SHEPHERD_IDS = {"+": 648, "-": 387, "ки": 12902}
"""The ids its model card reads: `candidate_tokens = tokenizer.encode(f"{good_token}
{bad_token}")[1:] # [648, 387]`, `step_tag_id = tokenizer.encode(f"{step_tag}")[-1] # 12902`
(search-and-learn hard-codes the same numbers)."""


def is_card_tokenizer(cfg: GenerativePRMConfig, tokenizer: Any) -> bool:
    """The PRM's tokenizer is the Math-Shepherd checkpoint's own (by hub id or cached folder)."""
    names = (str(cfg.model_path or ""), str(getattr(tokenizer, "name_or_path", "")))
    cached = "models--" + MATH_SHEPHERD_CARD.replace("/", "--")
    return any(n.rstrip("/").endswith(MATH_SHEPHERD_CARD) or cached in n for n in names)


def check_card_ids(
    cfg: GenerativePRMConfig, tokenizer: Any, labels: list[int], tag_id: int
) -> None:
    """With the card's own tokenizer and labels, the label and tag ids must be the card's: a
    tokenizer that splits them differently would read the wrong logits, silently."""
    if not is_card_tokenizer(cfg, tokenizer) or (cfg.positive_token, cfg.negative_token) != (
        "+",
        "-",
    ):
        return
    got = {"+": labels[0], "-": labels[1], "ки": tag_id}
    if got != MATH_SHEPHERD_IDS:
        raise FormatError(
            f"the tokenizer of {MATH_SHEPHERD_CARD} gives token ids {got}, but its model card "
            f"reads {MATH_SHEPHERD_IDS}; use the checkpoint's own tokenizer files (a newer "
            "transformers may tokenize them differently: report it)"
        )


class JudgePRM(GenerativePRM):
    """Any chat model asked whether the last step is correct (the generator when no path)."""

    def make_format(  # type: ignore[override]
        self, cfg: JudgePRMConfig, model: ModelConfig | None
    ) -> JudgeFormat:
        on_generator = (
            self.engine is not None
            and model is not None
            and cfg.model_path
            in (
                None,
                model.path,
            )
        )
        return JudgeFormat(
            self.tokenizer,
            cfg.judge_template,
            cfg.positive_token,
            cfg.negative_token,
            cfg.system_prompt,
            # the chat template the generator's prompts use, when judging with the generator
            chat_template_for(self.prompt, model)
            if on_generator and model is not None and self.prompt is not None
            else None,
        )
