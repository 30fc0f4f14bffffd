"""TRL's stepwise-supervision tokenization, the one contract between training and `prm=trl`.

Written here because current TRL releases no longer ship the PRM trainer. The layout follows
TRL's PRMTrainer: `[bos] + prompt + (step + separator)*`, all without other special tokens, and
the label of a step sits on the LAST token of its `step + separator`; every other position is
ignored (-100) by the loss. A scorer reads the positive-class probability at the same positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

IGNORE = -100


def tokenize_stepwise(
    tokenizer: Any,
    prompt: str,
    steps: Sequence[str],
    labels: Sequence[bool] | None,
    separator: str,
    max_length: int | None = None,
) -> dict[str, list[int]]:
    """`input_ids`, `labels` (-100 except at step ends) and `step_ends` (their positions).

    Without `labels`, step-end positions get label 1 so that `step_ends` is still filled; steps
    cut off by `max_length` lose their position."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    targets = [IGNORE] * len(ids)
    separator_ids = tokenizer.encode(separator, add_special_tokens=False)
    ends = []
    for i, step in enumerate(steps):
        piece = tokenizer(step, add_special_tokens=False)["input_ids"] + separator_ids
        ids += piece
        targets += [IGNORE] * (len(piece) - 1) + [int(labels[i]) if labels is not None else 1]
        ends.append(len(ids) - 1)
    if max_length is not None:
        ids, targets = ids[:max_length], targets[:max_length]
        ends = [e for e in ends if e < max_length]
    return {"input_ids": ids, "labels": targets, "step_ends": ends}
