"""Typed configuration of `python -m hotncold.train_prm` (Hydra group `train`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hotncold.config import ClusterConfig, ConfigError, ModelConfig, PromptConfig
from hotncold.config.errors import check_literal_escapes

DATA_SOURCES = ("generate", "hub", "file")


@dataclass
class TrainDataConfig:
    """Stepwise-supervision data in TRL's format: `prompt`, `completions` (steps), `labels`."""

    source: str = "generate"
    """generate (sample and auto-label arithmetic solutions here), hub (a dataset id), file."""
    path: str | None = None
    """Hub id (e.g. trl-lib/math_shepherd) or a local jsonl/json/parquet file."""
    subset: str | None = None
    """Hub configuration name."""
    split: str = "train"
    """Split to read (hub and file sources)."""
    prompt_field: str = "prompt"
    """Column with the problem."""
    completions_field: str = "completions"
    """Column with the list of steps."""
    labels_field: str = "labels"
    """Column with one boolean per step (true: the step is correct)."""
    limit: int | None = None
    """Most examples to use (after shuffling with `seed`)."""
    eval_fraction: float = 0.1
    """Share of examples held out for the step-level evaluation."""
    per_level: int = 40
    """generate: arithmetic problems per level to sample solutions for."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """generate: arithmetic levels to use."""
    generator_seed: int = 1
    """generate: arithmetic generator seed (1, so the problems differ from the default test set)."""
    samples_per_problem: int = 4
    """generate: solutions sampled per problem."""
    temperatures: list[float] = field(default_factory=lambda: [0.4, 0.8, 1.2])
    """generate: sampling temperatures, in equal shares (diverse solutions, right and wrong)."""


@dataclass
class TrainConfig:
    """How the PRM is trained: base model, objective settings, optimisation."""

    name: str = "arithmetic"
    """Short name used in the run directory name."""
    base_model: str = "embedded:smollm2_135m"
    """Weights to start from: hub id, folder, or `embedded:smollm2_135m`."""
    step_separator: str = "\n"
    """Appended to every step; the label sits on its last token (TRL's convention)."""
    max_length: int = 512
    """Longest tokenized example; longer ones are cut (steps past the cut lose their labels)."""
    learning_rate: float = 5e-5
    """Peak learning rate (linear decay)."""
    epochs: float = 1.0
    """Passes over the training split."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run the epochs)."""
    batch_size: int = 8
    """Examples per device batch."""
    gradient_accumulation_steps: int = 1
    """Batches per optimizer step."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_steps: float = 0.0
    """Learning-rate warm-up: a number of steps, or a share of all steps when below 1."""
    lora: bool = False
    """Train LoRA adapters (peft) instead of all weights; the saved model is merged."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling."""
    lora_dropout: float = 0.05
    """LoRA dropout."""
    save_steps: int = 50
    """Checkpoint every this many steps (resuming restarts from the last one)."""
    logging_steps: int = 10
    """Log the loss every this many steps."""
    eval_batch_size: int = 16
    """Examples per batch in the final evaluation."""
    data: TrainDataConfig = field(default_factory=TrainDataConfig)


@dataclass
class TrainPRMConfig:
    """`python -m hotncold.train_prm`: one training run."""

    train: TrainConfig = field(default_factory=TrainConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    """The generator that samples solutions when `train.data.source=generate`."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """How the generator is prompted for those solutions."""
    seed: int = 0
    out_dir: str = "outputs/train_prm/manual"
    run_name: str = ""
    overrides: list[str] = field(default_factory=list)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    """Where it runs: only `cluster.requeue_lock_wait_s` matters here (left out of run names)."""


NON_RESULT_KEYS = ("out_dir", "run_name", "overrides", "cluster")


def validate(cfg: TrainPRMConfig) -> None:
    t, d = cfg.train, cfg.train.data
    if d.source not in DATA_SOURCES:
        raise ConfigError(
            f"train.data.source={d.source!r} is unknown; use one of {', '.join(DATA_SOURCES)}"
        )
    if d.source in ("hub", "file") and not d.path:
        raise ConfigError(f"train.data.source={d.source} needs train.data.path")
    if not 0 < d.eval_fraction < 1:
        raise ConfigError(f"train.data.eval_fraction={d.eval_fraction} must be in (0, 1)")
    if d.limit is not None and d.limit < 2:
        raise ConfigError("train.data.limit must be at least 2 (one train and one eval example)")
    if d.source == "generate":
        if d.samples_per_problem < 1 or d.per_level < 1 or not d.levels:
            raise ConfigError("train.data needs per_level, samples_per_problem and levels >= 1")
        if any(v < 0 for v in d.temperatures) or not d.temperatures:
            raise ConfigError("train.data.temperatures must be a non-empty list of values >= 0")
        if set(d.levels) - {1, 2, 3, 4, 5}:
            raise ConfigError(f"train.data.levels={list(d.levels)}: arithmetic levels are 1-5")
    if not t.step_separator:
        raise ConfigError("train.step_separator is empty; TRL's default is '\\n'")
    check_literal_escapes("train.step_separator", t.step_separator)
    for key in ("learning_rate", "batch_size", "max_length", "save_steps", "logging_steps"):
        if getattr(t, key) <= 0:
            raise ConfigError(f"train.{key}={getattr(t, key)} must be positive")
    if t.epochs <= 0 and t.max_steps <= 0:
        raise ConfigError("set train.epochs > 0 or train.max_steps > 0")
    if cfg.cluster.requeue_lock_wait_s < 0:
        raise ConfigError("cluster.requeue_lock_wait_s must be 0 or more (seconds)")
