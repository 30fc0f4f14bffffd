"""The input formats of the published PRMs, token for token, and where each step is read.

A PRM is only as good as the input it was trained on, so each format follows its model card or
reference code exactly (sources below). Formats are plain functions of a Hugging Face tokenizer:
they are tested without any engine, down to the token id at every scored position.

Two kinds of format:
- **Head formats** (`encode`) build one token sequence for the whole solution and name, for each
  step, the position whose head output scores it. The model is causal, so the score of step i
  reads only tokens up to its position: scoring steps[start:] needs the sequence up to the last
  step, and a prefix cache can supply everything before steps[start].
- **Generative formats** (`prompts`) build, for each step, a prompt that ends exactly where the
  model writes its verdict; the score is the two-way softmax of the positive and negative label
  tokens' next-token log-probabilities, P(+) / (P(+) + P(-)), which equals the reference code's
  softmax over the two label logits. The prompts of one solution's steps share their prefixes.

Formats (problem = the problem text, s_1..s_n = the steps, already stripped):

- `rlhflow` (RLHFlow/Llama3.1-8B-PRM-Deepseek-Data; RLHFlow's prm_evaluate.py and
  search-and-learn's RLHFlow class): a chat rendered by the model's own chat template, where user
  turn 1 is "{problem} {s_1}", user turn k is "{s_k}", and every assistant turn is "+". Step k is
  read where the model writes assistant turn k: the prompt ends just before that "+" (the
  reference reads the logits at position -3 of the chat ending in "+<|eot_id|>").
- `math_shepherd` (peiyi9979/math-shepherd-mistral-7b-prm; its model card): the text
  "{problem} {s_1} ки{sep}{s_2} ки...{s_n} ки" with the tokenizer's BOS, sep = "\\n" (the card's
  "Step 1: ... ки\\nStep 2: ... ки"; search-and-learn uses "\\n\\n" and a system prompt line).
  Step k is read at its "ки" tag token: the logits there predict "+" or "-".
- `qwen_math_prm` (Qwen/Qwen2.5-Math-PRM-7B; its model card): the chat [system: the card's
  "Please reason step by step, and put your final answer within \\boxed{}.", user: problem,
  assistant: "<extra_0>".join(steps) + "<extra_0>"] rendered by its template; step k is read at
  the k-th "<extra_0>" token, probability of class 1 (positive) of the 2-class head. The
  template's closing tokens after the last separator are left out: a causal model's outputs at
  the separators do not depend on them.
- `skywork` (Skywork-o1-Open-PRM-Qwen-2.5-1.5B/7B; skywork-o1-prm-inference's prepare_input):
  tokens of BOS + problem + "\\n", then the response (the steps joined by the generator's step
  delimiter) split on "\\n", each piece's tokens followed by the "\\n" token, blank pieces
  included; step k is read at the "\\n" closing its last line, sigmoid of the value head.
- `trl` (TRL's PRMTrainer, stepwise supervision): BOS id (when the tokenizer has one) + tokens of
  the prompt (the problem, no special tokens), then for each step its tokens + the separator's
  tokens (default "\\n"); the label sits on the last separator token, class 1 = correct.
- `judge` (any chat model): for step k, one chat whose user message is `prm.judge_template` with
  the steps so far (one per line, step k last) and the question, ending at the assistant turn.
- `self_certainty`: the generator's own prompt followed by the steps joined by its step
  delimiter, exactly the text the generator wrote (see `hotncold.prm.self_certainty`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hotncold.train_prm.tokenize import tokenize_stepwise

Tokenizer = Any  # a transformers PreTrainedTokenizerFast (offsets and chat templates needed)


class FormatError(ValueError):
    """A tokenizer or template that cannot produce a model's documented format."""


@dataclass
class Encoded:
    """One solution as the PRM reads it."""

    ids: list[int]
    positions: list[int]
    """For each step, the position whose output scores it (ascending)."""


def label_id(tokenizer: Tokenizer, text: str) -> int:
    """The token a label is read from: the last token of `text` (as the reference code does)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise FormatError(f"the label {text!r} encodes to no token")
    return ids[-1]


def render_chat(
    tokenizer: Tokenizer,
    messages: list[dict[str, str]],
    add_generation_prompt: bool,
    chat_template: str | None = None,
) -> str:
    return tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        chat_template=chat_template,
    )


def _ids_and_offsets(tokenizer: Tokenizer, text: str, special: bool) -> tuple[list, list]:
    enc = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True)
    return list(enc["input_ids"]), list(enc["offset_mapping"])


def _token_at(offsets: list, char: int) -> int:
    """Index of the token that covers character `char` (the first one ending past it)."""
    lo, hi = 0, len(offsets)
    while lo < hi:  # offsets are sorted by their ends: bisect
        mid = (lo + hi) // 2
        if offsets[mid][1] > char:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(offsets):
        raise FormatError(f"no token covers character {char}")
    return lo


class RLHFlowFormat:
    def __init__(self, tokenizer: Tokenizer, positive: str = "+") -> None:
        self.tokenizer = tokenizer
        self.positive = positive
        self.positive_id = label_id(tokenizer, positive)

    def conversation(self, problem: str, steps: Sequence[str]) -> list[dict[str, str]]:
        messages = []
        for k, step in enumerate(steps):
            text = f"{problem} {step}" if k == 0 else step
            messages.append({"role": "user", "content": text})
            messages.append({"role": "assistant", "content": self.positive})
        return messages

    def prompts(self, problem: str, steps: Sequence[str], start: int = 0) -> list[list[int]]:
        messages = self.conversation(problem, steps)
        full = render_chat(self.tokenizer, messages, add_generation_prompt=False)
        ids, offsets = _ids_and_offsets(self.tokenizer, full, special=False)
        out = []
        for k in range(start, len(steps)):  # earlier steps are scored: render only new heads
            head = render_chat(self.tokenizer, messages[: 2 * k + 1], add_generation_prompt=True)
            if not full.startswith(head) or not full.startswith(self.positive, len(head)):
                raise FormatError(
                    "the chat template does not render earlier turns as a prefix of later ones"
                )
            index = _token_at(offsets, len(head))
            if ids[index] != self.positive_id or offsets[index][0] != len(head):
                raise FormatError(
                    f"the answer {self.positive!r} of turn {k + 1} is not its own token"
                )
            out.append(ids[:index])
        return out


class MathShepherdFormat:
    TAG = "ки"

    def __init__(self, tokenizer: Tokenizer, separator: str = "\n") -> None:
        self.tokenizer = tokenizer
        self.separator = separator
        self.tag_id = label_id(tokenizer, self.TAG)

    def text(self, problem: str, steps: Sequence[str]) -> tuple[str, list[int]]:
        """The text and the character offset of each step's tag."""
        text, tags = f"{problem} ", []
        for k, step in enumerate(steps):
            if k:
                text += self.separator
            text += f"{step} "
            tags.append(len(text))
            text += self.TAG
        return text, tags

    def prompts(self, problem: str, steps: Sequence[str], start: int = 0) -> list[list[int]]:
        text, tags = self.text(problem, steps)
        ids, offsets = _ids_and_offsets(self.tokenizer, text, special=True)
        out = []
        for k in range(start, len(steps)):
            index = _token_at(offsets, tags[k])
            if ids[index] != self.tag_id:
                raise FormatError(f"the step tag {self.TAG!r} of step {k + 1} is not one token")
            out.append(ids[: index + 1])
        return out


class QwenMathPRMFormat:
    SEPARATOR = "<extra_0>"
    SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

    def __init__(self, tokenizer: Tokenizer, system_prompt: str | None = SYSTEM) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        ids = tokenizer.encode(self.SEPARATOR, add_special_tokens=False)
        if len(ids) != 1:
            raise FormatError(f"the tokenizer has no single {self.SEPARATOR} token")
        self.separator_id = ids[0]

    def encode(self, problem: str, steps: Sequence[str]) -> Encoded:
        messages = [{"role": "user", "content": problem}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        head = render_chat(self.tokenizer, messages, add_generation_prompt=True)
        text = head + "".join(f"{step}{self.SEPARATOR}" for step in steps)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        positions = [i for i, t in enumerate(ids) if t == self.separator_id]
        if len(positions) != len(steps):
            raise FormatError(
                f"found {len(positions)} {self.SEPARATOR} tokens for {len(steps)} steps "
                "(does the problem or a step contain the separator?)"
            )
        return Encoded(ids, positions)


class SkyworkFormat:
    """skywork-o1-prm-inference's `prepare_input(problem, response, tokenizer, step_token)`.

    The reference splits the response text on `step_token` ("\n") and flags every piece,
    blank lines included: each piece is tokenized on its own (`tokenizer.encode`, with the
    tokenizer's default special tokens, as the reference calls it), followed by the step
    token's id, whose position is flagged. The response here is the generator's text: the
    steps joined by its `model.step_delimiter` (`joiner`). hotncold scores its own steps, not
    lines: a step's score is the reward at the flag closing its last line. The rewards of a
    step's earlier lines and of the blank lines between steps are in the input exactly as the
    reference builds it, but are no step's score. The joiner must start with the step token,
    so that a step's last line ends where the step ends (and a longer solution's input extends
    a shorter one's, which incremental scoring relies on).
    """

    def __init__(self, tokenizer: Tokenizer, step_token: str = "\n", joiner: str = "\n\n") -> None:
        if not joiner.startswith(step_token):
            raise FormatError(
                f"skywork scores the lines of the generator's text, so model.step_delimiter "
                f"must start with {step_token!r} (it is {joiner!r})"
            )
        self.tokenizer = tokenizer
        self.step_token = step_token
        self.joiner = joiner
        self.step_id = tokenizer.encode(step_token)[-1]

    def encode(self, problem: str, steps: Sequence[str]) -> Encoded:
        tok = self.tokenizer
        ids = list(tok.encode((tok.bos_token or "") + problem + "\n"))
        response, ends = "", []
        for k, step in enumerate(steps):
            response += (self.joiner if k else "") + step
            ends.append(len(response))
        flags = []
        for piece in response.split(self.step_token):
            ids += [*(tok.encode(piece) if piece else []), self.step_id]
            flags.append(len(ids) - 1)
        # the piece closing step k is the one ending at its last character
        positions = [flags[response.count(self.step_token, 0, end)] for end in ends]
        return Encoded(ids, positions)


class TRLFormat:
    def __init__(self, tokenizer: Tokenizer, separator: str = "\n") -> None:
        self.tokenizer = tokenizer
        self.separator = separator
        self.separator_ids = tokenizer.encode(separator, add_special_tokens=False)
        if not self.separator_ids:
            raise FormatError(f"the step separator {separator!r} encodes to no token")

    def encode(self, problem: str, steps: Sequence[str]) -> Encoded:
        # The trainer's own tokenization, so a checkpoint is read exactly as it was trained.
        out = tokenize_stepwise(self.tokenizer, problem, steps, None, self.separator)
        return Encoded(out["input_ids"], out["step_ends"])


_PLACEHOLDER = re.compile(r"\{(problem|steps|positive|negative)\}")


class JudgeFormat:
    def __init__(
        self,
        tokenizer: Tokenizer,
        template: str,
        positive: str = "+",
        negative: str = "-",
        system_prompt: str | None = None,
        chat_template: str | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.positive = positive
        self.negative = negative
        self.system_prompt = system_prompt
        self.chat_template = chat_template

    def message(self, problem: str, steps: Sequence[str]) -> str:
        values = {
            "problem": problem,
            "steps": "\n".join(steps),
            "positive": self.positive,
            "negative": self.negative,
        }
        # One pass over the template: text from the problem or steps is never re-substituted.
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)

    def prompts(self, problem: str, steps: Sequence[str], start: int = 0) -> list[list[int]]:
        out = []
        for k in range(start, len(steps)):
            messages = [{"role": "user", "content": self.message(problem, steps[: k + 1])}]
            if self.system_prompt is not None:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            text = render_chat(
                self.tokenizer,
                messages,
                add_generation_prompt=True,
                chat_template=self.chat_template,
            )
            out.append(self.tokenizer.encode(text, add_special_tokens=False))
        return out
