"""Token classification at the step separators on transformers' `Trainer`.

This is TRL's PRM objective (cross-entropy over two classes at the last token of every
`step + separator`, all other positions ignored) written on plain transformers because current
TRL releases no longer ship `PRMTrainer`, and the releases that do predate the transformers
version vLLM needs here. LoRA comes from peft; the saved model has the adapters merged, so it
loads as a plain `AutoModelForTokenClassification` (what `prm=trl` expects).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hotncold.engine.vllm_engine import resolve_model_path
from hotncold.train_prm.config import TrainConfig
from hotncold.train_prm.tokenize import tokenize_stepwise

log = logging.getLogger(__name__)

MANIFEST = "hotncold_prm.json"


HEAD_NAMES = ("score", "classifier")
"""Names of the token-classification head in transformers' *ForTokenClassification models."""


def load_base(path: str) -> tuple[Any, Any]:
    """The base model with a fresh 2-class token-classification head, and its tokenizer."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder = resolve_model_path(path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForTokenClassification.from_pretrained(
        folder,
        num_labels=2,
        dtype=torch.float32,
        id2label={0: "incorrect", 1: "correct"},
        label2id={"incorrect": 0, "correct": 1},
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def tokenized_dataset(examples: list[dict[str, Any]], tokenizer: Any, cfg: TrainConfig) -> Any:
    from datasets import Dataset

    rows = []
    for e in examples:
        t = tokenize_stepwise(
            tokenizer,
            e["prompt"],
            e["completions"],
            e["labels"],
            cfg.step_separator,
            cfg.max_length,
        )
        if t["step_ends"]:
            rows.append({"input_ids": t["input_ids"], "labels": t["labels"]})
    return Dataset.from_list(rows)


class _LossToLog:
    """A Trainer callback that copies each logged loss into hotncold's log (run.log)."""

    def __new__(cls) -> Any:
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
                if logs:
                    log.info(
                        "step %d: %s",
                        state.global_step,
                        ", ".join(
                            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in logs.items()
                        ),
                    )

        return Callback()


def train(examples: list[dict[str, Any]], cfg: TrainConfig, run: Path, seed: int) -> dict[str, Any]:
    """Train (resuming from the last checkpoint in `run/checkpoints`), save to `run/model`."""
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    model, tokenizer = load_base(cfg.base_model)
    if cfg.lora:
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                task_type=TaskType.TOKEN_CLS,
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules="all-linear",
                # the fresh classification head is trained whole (TOKEN_CLS puts it in
                # modules_to_save); an adapter on it as well is refused by peft
                exclude_modules=list(HEAD_NAMES),
            ),
        )
    dataset = tokenized_dataset(examples, tokenizer, cfg)
    checkpoints = run / "checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps if cfg.warmup_steps < 1 else int(cfg.warmup_steps),
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=[],
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        callbacks=[_LossToLog()],
    )
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if last:
        log.info("resuming training from %s", last)
    result = trainer.train(resume_from_checkpoint=last)
    final = trainer.model.merge_and_unload() if cfg.lora else trainer.model
    out = run / "model"
    final.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / MANIFEST).write_text(
        json.dumps(
            {
                "format": "trl",
                "step_separator": cfg.step_separator,
                "base_model": cfg.base_model,
                "positive_label": 1,
                "max_length": cfg.max_length,
            },
            indent=2,
        )
        + "\n"
    )
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    return {
        "examples": len(dataset),
        "global_step": trainer.state.global_step,
        "resumed_from": last,
        "train_loss": result.training_loss,
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "log_history": history,
    }
