"""PRMs with a classification head on vLLM's pooling runner: Qwen2.5-Math-PRM, Skywork-o1-PRM,
and any token-classification PRM trained with TRL.

The engine runs the model with token-level pooling (`tok_pooling_type="ALL"`, raw logits) and
prefix caching on: vLLM then returns head outputs only for the tokens it computed, the tokens
past the cached prefix, and those are exactly the positions of the new steps. A beam grown by
one step costs that step's tokens plus at most one KV block, not a re-read of the prefix.

Which architectures run natively:
- Qwen2.5-Math-PRM: `Qwen2ForProcessRewardModel` is a vLLM model (2-class head, class 1
  positive).
- TRL checkpoints: `*ForTokenClassification` (Llama, Qwen2, Mistral, ...) load through vLLM's
  classification adapter (`score` linear head, bias supported).
- Skywork-o1-Open-PRM: its `v_head.summary` value head is not a vLLM architecture (Skywork ships
  a vLLM plugin). The checkpoint is converted once into a `Qwen2ForTokenClassification` folder
  with one label (`score` = the value head; the LM head dropped) under the hotncold cache; only
  the shards that hold those tensors are rewritten, the others are linked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hotncold.config import (
    ConfigError,
    HeadPRMConfig,
    ModelConfig,
    ModelPRMConfig,
    QwenMathPRMConfig,
)
from hotncold.engine import vllm_engine
from hotncold.engine.embedded import cache_root
from hotncold.prm.base import PRM, ItemScores, PendingScore
from hotncold.prm.formats import QwenMathPRMFormat, SkyworkFormat, TRLFormat
from hotncold.prm.loading import (
    as_loaded_by_vllm,
    check_length,
    load_tokenizer,
    prm_model_config,
)

log = logging.getLogger(__name__)

POOLER = {"tok_pooling_type": "ALL", "use_activation": False}
TRL_SETTINGS_FILES = ("hotncold_prm.json", "prm_config.json")
"""Optional files in a TRL checkpoint folder holding {"step_separator": "..."}, the one it was
trained with (`python -m hotncold.train_prm` writes the first; `prm.step_separator` overrides)."""


class PoolingPRM(PRM):
    """Scores steps from a token-level head at each step's position."""

    positive_index = 1
    """Column of the positive class in a 2-class head; a 1-output head is read with a sigmoid."""

    def __init__(
        self,
        cfg: ModelPRMConfig,
        engine: Any = None,
        model: ModelConfig | None = None,
        prompt: Any = None,
    ) -> None:
        super().__init__(batch_size=cfg.batch_size, incremental=cfg.incremental)
        self.name = cfg.name
        path = self.weights(cfg)
        self.engine = vllm_engine.get_engine(
            prm_model_config(cfg, path, runner="pooling", pooler=POOLER)
        )
        self.tokenizer = load_tokenizer(path, cfg.trust_remote_code)
        self.model = model
        self.format = self.make_format(cfg, path)

    def weights(self, cfg: ModelPRMConfig) -> str:
        """The folder or hub id vLLM loads."""
        return str(cfg.model_path)

    def make_format(self, cfg: ModelPRMConfig, path: str) -> Any:
        raise NotImplementedError

    def _score_new(self, items: Sequence[PendingScore]) -> list[ItemScores]:
        encoded = [self.format.encode(item.problem, item.steps) for item in items]
        prompts = [e.ids[: e.positions[-1] + 1] for e in encoded]
        first = [e.positions[item.start] for e, item in zip(encoded, items)]
        for prompt in prompts:
            check_length(prompt, self.engine.max_model_len, self.name)
        outputs = self.engine.token_outputs(prompts, first, use_cache=self.incremental)
        out = []
        for e, item, offset, (rows, computed) in zip(encoded, items, first, outputs):
            picked = rows[[p - offset for p in e.positions[item.start :]]]  # rows start at first
            if picked.shape[-1] == 1:
                probs = picked[:, 0].sigmoid()
            else:
                probs = picked.softmax(dim=-1)[:, self.positive_index]
            out.append(ItemScores(probs.tolist(), computed))
        return out

    def _forget_prefixes(self) -> None:
        self.engine.reset_prefix_cache()


class QwenMathPRM(PoolingPRM):
    """Qwen/Qwen2.5-Math-PRM-7B: steps joined by <extra_0>, positive-class probability there."""

    def make_format(self, cfg: QwenMathPRMConfig, path: str) -> QwenMathPRMFormat:  # type: ignore[override]
        return QwenMathPRMFormat(self.tokenizer, cfg.system_prompt)


class SkyworkPRM(PoolingPRM):
    """Skywork-o1-Open-PRM-Qwen-2.5: sigmoid of the value head at each step's separator."""

    def weights(self, cfg: ModelPRMConfig) -> str:
        return str(token_classification_folder(str(cfg.model_path)))

    reads_step_delimiter = True

    def make_format(self, cfg: HeadPRMConfig, path: str) -> SkyworkFormat:  # type: ignore[override]
        # The reference reads the generator's whole text line by line: the steps joined by the
        # delimiter the generator wrote between them.
        joiner = self.model.step_delimiter if self.model is not None else "\n\n"
        return SkyworkFormat(self.tokenizer, cfg.step_separator or "\n", joiner)


class TRLPRM(PoolingPRM):
    """A PRM trained with TRL's PRMTrainer: token classification at each step's separator."""

    def weights(self, cfg: ModelPRMConfig) -> str:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(
            local_or_hub(str(cfg.model_path)), trust_remote_code=cfg.trust_remote_code
        )
        archs = getattr(config, "architectures", None) or []
        if not any(a.endswith("ForTokenClassification") for a in archs):
            raise ValueError(
                f"prm.model_path={cfg.model_path} holds {archs or 'no architecture'}, not a "
                "token-classification PRM (AutoModelForTokenClassification, as TRL's "
                "PRMTrainer trains)"
            )
        return str(cfg.model_path)

    def make_format(self, cfg: HeadPRMConfig, path: str) -> TRLFormat:  # type: ignore[override]
        separator = cfg.step_separator
        folder = Path(local_or_hub(path))
        for name in TRL_SETTINGS_FILES:
            if separator is None and (folder / name).is_file():
                separator = json.loads((folder / name).read_text()).get("step_separator")
        return TRLFormat(self.tokenizer, separator or "\n")


def local_or_hub(path: str) -> str:
    """A local folder for `path`: itself when it is one, else its hub snapshot (downloaded once;
    offline runs use the local hub cache)."""
    if Path(path).is_dir():
        return path
    if path.startswith(("/", ".", "~")) or path.count("/") != 1:
        raise ConfigError(f"prm.model_path={path}: no such folder (nor a hub id owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(
            path,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
        )
    except Exception as error:  # offline, gated, misspelt: all mean the weights are not here
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"prm.model_path={path}: cannot get it from the hub ({reason})") from None


VALUE_HEAD = {"v_head.summary.weight": "score.weight", "v_head.summary.bias": "score.bias"}


def token_classification_folder(path: str) -> Path:
    """A vLLM-loadable `Qwen2ForTokenClassification` (1 label) folder for a Skywork PRM."""
    source = Path(local_or_hub(path)).resolve()
    config = json.loads((source / "config.json").read_text())
    if config.get("architectures") == ["Qwen2ForTokenClassification"]:
        return source  # already converted
    digest = hashlib.sha1(str(source).encode()).hexdigest()[:10]
    folder = cache_root() / "models" / "prm" / f"{source.name}-{digest}"
    if (folder / "config.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "config.json").is_file():  # another process converted it meanwhile
            return folder
        log.info("converting the value-head PRM %s for vLLM into %s (once)", source, folder)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        try:
            _convert_value_head(source, tmp, config)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _convert_value_head(source: Path, out: Path, config: dict[str, Any]) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    shards = sorted(source.glob("*.safetensors"))
    if not shards:
        raise ValueError(f"{source} has no .safetensors weights to convert")
    found = False
    weight_map: dict[str, str] = {}
    for shard in shards:
        with safe_open(str(shard), framework="pt") as f:
            keys = list(f.keys())
            touched = any(k in VALUE_HEAD or k.startswith("lm_head.") for k in keys)
            if not touched:
                os.symlink(shard, out / shard.name)
                weight_map.update(dict.fromkeys(keys, shard.name))
                continue
            tensors = {}
            for key in keys:
                if key.startswith("lm_head."):
                    continue  # a value-head PRM never reads its LM head
                name = VALUE_HEAD.get(key, key)
                found |= key in VALUE_HEAD
                tensors[name] = f.get_tensor(key).contiguous()
            save_file(tensors, str(out / shard.name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, shard.name))
    if not found:
        raise ValueError(
            f"{source} has no value head (v_head.summary.weight): not a Skywork-style PRM"
        )
    if (source / "model.safetensors.index.json").is_file():
        index = {"metadata": {}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    (out / "config.json").write_text(json.dumps(as_loaded_by_vllm(config), indent=2))
    for item in source.iterdir():
        if item.suffix != ".safetensors" and item.name not in (
            "config.json",
            "model.safetensors.index.json",
        ):
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, out / item.name)
