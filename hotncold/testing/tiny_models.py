"""Tiny random-weight models of every PRM architecture hotncold loads, built offline in seconds.

For tests and benchmarks only (see `hotncold.testing`): no run ever loads them. They exist so
that tests and benchmarks run each PRM's real loading and scoring path (vLLM on the CPU, real
tokenizers, real checkpoint layouts) without downloading 7B weights. Their scores
mean nothing. Shapes keep a head dimension of 64, the smallest the CPU attention supports
(hidden 128, 2 heads). The tokenizer is the embedded SmolLM2 one plus the special tokens the
formats need: `<extra_0>` (Qwen2.5-Math-PRM's step separator) and `ки` (Math-Shepherd's tag);
with `standalone=True` it is a small byte-level BPE trained here instead, so that the models
need nothing but `tokenizers` (`python -m hotncold.doctor` runs them on GPU installs, which
do not have the embedded model's package). Its chat template is SmolLM2's ChatML; `chat="llama3"`
gives it Llama 3's chat format instead (the family of RLHFlow's PRM, whose reference code reads
the position that format implies).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hotncold.engine.embedded import prepare

ARCHS = ("llama", "mistral", "qwen2")
SIZES = {
    "tiny": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2},
    # about SmolLM2-135M's compute, for benchmarks where the model's work should dominate
    "small": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30},
}


CHATS = ("chatml", "llama3")
# Llama 3's turns, written from Meta's prompt format: BOS, then per message a header, the
# content stripped, <|eot_id|>; the generation prompt opens an assistant header. (Llama 3.1
# also puts a system turn first; that moves no position relative to the end of a turn.)
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
LLAMA3_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def tokenizer(out: Path, chat: str = "chatml") -> Any:
    """The embedded model's tokenizer with the PRM formats' special tokens, saved to `out`;
    `chat` picks its chat template (see `CHATS`)."""
    from transformers import AutoTokenizer

    if chat not in CHATS:
        raise ValueError(f"chat={chat!r}: use one of {', '.join(CHATS)}")
    tok = AutoTokenizer.from_pretrained(prepare())
    specials = ["<extra_0>", *(LLAMA3_TOKENS if chat == "llama3" else [])]
    tok.add_special_tokens({"additional_special_tokens": specials})
    tok.add_tokens(["ки"])
    if chat == "llama3":
        tok.bos_token, tok.eos_token = "<|begin_of_text|>", "<|eot_id|>"
        tok.chat_template = LLAMA3_TEMPLATE
    tok.save_pretrained(out)
    return tok


STANDALONE_CORPUS = (
    "Solve the math problem step by step. Tom has 12 apples and buys 7 more. How many apples "
    "does he have? Tom starts with 12 apples. He buys 7 more: 12 + 7 = 19. The final answer is "
    "$\\boxed{19}$. Here is a math problem and a solution written one step per line. Is the "
    "last step of the solution correct? Answer with a single character: + if it is correct, - "
    "if it is wrong. 0 1 2 3 4 5 6 7 8 9 = + - * / ( ) { } $ \\frac \\times"
)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def standalone_tokenizer(out: Path) -> Any:
    """A byte-level BPE tokenizer (any text encodes) trained on a fixed sentence, with a ChatML
    chat template and the formats' tokens, saved to `out`. Deterministic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<extra_0>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([STANDALONE_CORPUS] * 4, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<extra_0>"],
    )
    tok.add_tokens(["ки"])
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)
    return tok


def _config(arch: str, vocab: int, size: str = "tiny", **extra: Any) -> Any:
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[arch]
    dims = SIZES[size]
    return cls(
        vocab_size=vocab,
        num_attention_heads=dims["hidden_size"] // 64,
        num_key_value_heads=dims["hidden_size"] // 64,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        # wider than the usual 0.02 so that random label probabilities spread over (0, 1)
        initializer_range=0.1,
        **dims,
        **extra,
    )


def causal_lm(
    out: Path,
    arch: str = "llama",
    seed: int = 0,
    size: str = "tiny",
    standalone: bool = False,
    chat: str = "chatml",
) -> Path:
    """A generative PRM or judge: `*ForCausalLM` (rlhflow: llama, math_shepherd: mistral)."""
    import torch
    from transformers import AutoModelForCausalLM

    tok = standalone_tokenizer(out) if standalone else tokenizer(out, chat)
    torch.manual_seed(seed)
    config = _config(
        arch, len(tok), size, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


def token_classification(
    out: Path, arch: str = "qwen2", seed: int = 0, separator: str | None = None
) -> Path:
    """A TRL PRMTrainer checkpoint: `*ForTokenClassification` with 2 labels (1 = correct)."""
    import torch
    from transformers import AutoModelForTokenClassification

    tok = tokenizer(out)
    torch.manual_seed(seed)
    config = _config(arch, len(tok), num_labels=2, bos_token_id=tok.bos_token_id)
    AutoModelForTokenClassification.from_config(config).save_pretrained(out)
    if separator is not None:
        (out / "prm_config.json").write_text(json.dumps({"step_separator": separator}))
    return out


def qwen_process_reward(
    out: Path, seed: int = 0, size: str = "tiny", standalone: bool = False
) -> Path:
    """A `Qwen2ForProcessRewardModel` like Qwen2.5-Math-PRM: Qwen2 body and a 2-layer MLP head
    `score.0` (hidden -> hidden), ReLU, `score.2` (hidden -> 2)."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Model

    tok = standalone_tokenizer(out) if standalone else tokenizer(out)
    torch.manual_seed(seed)
    config = _config("qwen2", len(tok), size, num_labels=2)
    body = Qwen2Model(config)
    hidden = config.hidden_size
    tensors = {f"model.{k}": v.contiguous() for k, v in body.state_dict().items()}
    tensors["score.0.weight"] = torch.randn(hidden, hidden) * 0.1
    tensors["score.0.bias"] = torch.randn(hidden) * 0.1
    tensors["score.2.weight"] = torch.randn(2, hidden) * 0.1
    tensors["score.2.bias"] = torch.randn(2) * 0.1
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.save_pretrained(out)
    return out


def skywork_value_head(out: Path, seed: int = 0) -> Path:
    """A checkpoint laid out like Skywork-o1-Open-PRM: a Qwen2 causal LM (`model.*`,
    `lm_head.weight`) plus the value head `v_head.summary.{weight,bias}` (hidden -> 1)."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2ForCausalLM

    tok = tokenizer(out)
    torch.manual_seed(seed)
    config = _config("qwen2", len(tok), bos_token_id=tok.bos_token_id)
    lm = Qwen2ForCausalLM(config)
    tensors = {k: v.contiguous() for k, v in lm.state_dict().items()}
    tensors["v_head.summary.weight"] = torch.randn(1, config.hidden_size) * 0.1
    tensors["v_head.summary.bias"] = torch.randn(1) * 0.1
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.architectures = ["Qwen2ForPrmModel"]
    config.save_pretrained(out)
    return out
