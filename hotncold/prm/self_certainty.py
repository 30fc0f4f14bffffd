"""A verifier with no extra model: the generator's own confidence in each step it wrote.

The score of a step is the geometric mean of the probabilities the generator gives its tokens,
exp(mean log p(token | everything before)), read at temperature 1 from the generator's engine:
the prompt the generator saw followed by the steps joined by the model's step delimiter (the
delimiter tokens count with the step they open). It measures certainty, not correctness: a
model can be sure of a wrong step. Scores lie in (0, 1].

vLLM computes prompt log-probabilities only past the prefix it finds cached (see
`VLLMEngine.prompt_logprobs`), so a solution grown by one step costs that step's tokens plus
at most one KV block, on the engine the generator already has: no weights are loaded twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hotncold.config import ModelConfig, PromptConfig, SelfCertaintyConfig
from hotncold.engine.prompts import build_prompt
from hotncold.prm.base import PRM, ItemScores, PendingScore
from hotncold.prm.loading import check_length, load_tokenizer


def stored_step_scores(
    text: str, steps: Sequence[str], token_logprobs: Sequence[float], token_ends: Sequence[int]
) -> list[float]:
    """Self-certainty of each step from the log-probabilities a run stored with a completion
    (`output.logprobs`), with no engine: exp(mean log p) of the tokens each step owns, 1 for a
    step that owns none. A token belongs to the first step not yet ended where it starts, so
    the delimiter tokens before a step count with the step they open (as in `SelfCertainty`);
    the end-of-sequence token, which adds no text, counts with none. The tokens are the
    sampled ones, at the model's temperature-1 distribution, where `SelfCertainty` re-reads
    the text; the two agree up to how the text is split into tokens at step boundaries."""
    spans, at = [], 0
    for step in steps:
        start = text.find(step, at)
        if start < 0:
            raise ValueError(f"step {step[:40]!r} is not in the completion's text")
        spans.append((start, start + len(step)))
        at = start + len(step)
    sums, counts = [0.0] * len(steps), [0] * len(steps)
    begin, k = 0, 0
    for logprob, end in zip(token_logprobs, token_ends):
        if not steps or begin >= len(text):
            break
        while k < len(steps) - 1 and begin >= spans[k][1]:
            k += 1
        sums[k] += logprob
        counts[k] += 1
        begin = end
    return [math.exp(s / c) if c else 1.0 for s, c in zip(sums, counts)]


class SelfCertainty(PRM):
    def __init__(
        self,
        cfg: SelfCertaintyConfig,
        engine: Any = None,
        model: ModelConfig | None = None,
        prompt: PromptConfig | None = None,
    ) -> None:
        super().__init__(batch_size=cfg.batch_size, incremental=cfg.incremental)
        if engine is None or model is None or prompt is None:
            raise ValueError(
                "prm=self_certainty reads the generator: pass its engine, model and prompt"
            )
        self.engine = engine
        self.model = model
        self.prompt_config = prompt
        self.tokenizer = load_tokenizer(engine.path, model.trust_remote_code)
        self._prompts: dict[str, str] = {}

    def prompt(self, problem: str) -> str:
        if problem not in self._prompts:
            self._prompts[problem] = build_prompt(
                self.engine, self.prompt_config, self.model, problem
            )
        return self._prompts[problem]

    def encode(self, problem: str, steps: Sequence[str]) -> tuple[list[int], list[int]]:
        """Token ids of prompt + solution, and the index of each step's first token (plus the
        end), so step k owns tokens bounds[k]..bounds[k+1]-1."""
        prompt = self.prompt(problem)
        text, ends = prompt, []
        for k, step in enumerate(steps):
            text += (self.model.step_delimiter if k else "") + step
            ends.append(len(text))
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        bounds, char_starts = [], [len(prompt), *ends[:-1]]
        token = 0
        for char in char_starts:
            while token < len(ids) and offsets[token][0] < char:
                token += 1
            bounds.append(token)
        bounds.append(len(ids))
        return ids, bounds

    def _score_new(self, items: Sequence[PendingScore]) -> list[ItemScores]:
        encoded = [self.encode(item.problem, item.steps) for item in items]
        for ids, _ in encoded:
            check_length(ids, self.engine.max_model_len, "self_certainty")
        first = [max(1, bounds[item.start]) for (_, bounds), item in zip(encoded, items)]
        outputs = self.engine.prompt_logprobs(
            [ids for ids, _ in encoded], first, use_cache=self.incremental
        )
        out = []
        for (_, bounds), item, offset, (logprobs, computed) in zip(encoded, items, first, outputs):
            row = []
            for k in range(item.start, len(item.steps)):
                lo, hi = max(bounds[k], offset), bounds[k + 1]
                values = logprobs[lo - offset : hi - offset]
                # a step that shares every token with its neighbours (tokenizer merges) has
                # nothing of its own to be sure about: neutral certainty 1
                row.append(math.exp(sum(values) / len(values)) if values else 1.0)
            out.append(ItemScores(row, computed))
        return out

    def _forget_prefixes(self) -> None:
        self.engine.reset_prefix_cache()
