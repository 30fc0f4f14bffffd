"""Step-level evaluation of a trained PRM on held-out stepwise examples.

Two views: per-step classification (accuracy, and F1 of finding wrong steps), and
ProcessBench's: each solution's first wrong step is predicted as the first step scored below
the threshold (or "none"); accuracy on solutions with an error and on fully correct ones, and
their harmonic mean as the F1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hotncold.train_prm.tokenize import tokenize_stepwise


def step_probabilities(
    model: Any,
    tokenizer: Any,
    examples: Sequence[dict[str, Any]],
    separator: str,
    max_length: int,
    batch_size: int,
) -> list[list[float]]:
    """P(correct) at every step end of every example (steps cut by max_length get none)."""
    import torch

    model.eval()
    out: list[list[float]] = []
    for start in range(0, len(examples), batch_size):
        chunk = [
            tokenize_stepwise(tokenizer, e["prompt"], e["completions"], None, separator, max_length)
            for e in examples[start : start + batch_size]
        ]
        width = max(len(c["input_ids"]) for c in chunk)
        pad = tokenizer.pad_token_id
        ids = torch.tensor([c["input_ids"] + [pad] * (width - len(c["input_ids"])) for c in chunk])
        mask = torch.tensor(
            [[1] * len(c["input_ids"]) + [0] * (width - len(c["input_ids"])) for c in chunk]
        )
        with torch.no_grad():
            probs = model(input_ids=ids, attention_mask=mask).logits.softmax(-1)[..., 1]
        out += [[float(probs[row, end]) for end in c["step_ends"]] for row, c in enumerate(chunk)]
    return out


def first_error(labels: Sequence[bool]) -> int:
    """Index of the first wrong step, or -1 when every step is right."""
    return next((i for i, ok in enumerate(labels) if not ok), -1)


def score(
    examples: Sequence[dict[str, Any]],
    probabilities: Sequence[Sequence[float]],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Step-level and ProcessBench-style metrics from labels and predicted probabilities."""
    tp = fp = fn = right = total = 0
    hits = {"error": [0, 0], "correct": [0, 0]}  # [right, seen]
    for e, probs in zip(examples, probabilities):
        labels = list(e["labels"])[: len(probs)]  # steps past max_length have no prediction
        predicted = [p >= threshold for p in probs]
        for truth, guess in zip(labels, predicted):
            total += 1
            right += truth == guess
            tp += (not truth) and (not guess)
            fp += truth and (not guess)
            fn += (not truth) and guess
        kind = "error" if first_error(labels) >= 0 else "correct"
        hits[kind][1] += 1
        hits[kind][0] += first_error(predicted) == first_error(labels)
    acc_error = hits["error"][0] / hits["error"][1] if hits["error"][1] else None
    acc_correct = hits["correct"][0] / hits["correct"][1] if hits["correct"][1] else None
    f1 = (
        2 * acc_error * acc_correct / (acc_error + acc_correct)
        if acc_error is not None and acc_correct is not None and acc_error + acc_correct > 0
        else 0.0
    )
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "examples": len(examples),
        "steps": total,
        "step_accuracy": right / total if total else None,
        "wrong_step_precision": precision,
        "wrong_step_recall": recall,
        "wrong_step_f1": 2 * precision * recall / (precision + recall)
        if precision + recall
        else 0.0,
        "processbench": {
            "error_solutions": hits["error"][1],
            "correct_solutions": hits["correct"][1],
            "accuracy_error": acc_error,
            "accuracy_correct": acc_correct,
            "f1": f1,
        },
        "threshold": threshold,
    }
