"""Parameter counts from config.json alone, checked against the tensors real checkpoints hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotncold.engine.model_facts import Parameters, parameter_count, read_config, weight_bytes
from hotncold.testing import tiny_models


def stored_parameters(folder: Path) -> int:
    """Elements of every tensor in a folder's safetensors files (what the weights really hold)."""
    from safetensors import safe_open

    total = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                total += _numel(f, name)
    return total


def _numel(f, name: str) -> int:
    shape = f.get_slice(name).get_shape()
    n = 1
    for d in shape:
        n *= d
    return n


def test_the_embedded_model_counts_exactly_what_its_file_holds():
    from hotncold.engine.embedded import prepare

    folder = prepare()
    params = parameter_count(read_config(folder))
    assert params is not None
    assert params.total == stored_parameters(folder) == 134_515_008  # SmolLM2-135M
    assert params.tied and params.lm_head == 0
    assert params.embedding == 49152 * 576


@pytest.mark.parametrize(
    "build",
    [
        lambda out: tiny_models.causal_lm(out, "llama"),
        lambda out: tiny_models.causal_lm(out, "mistral"),
        lambda out: tiny_models.causal_lm(out, "qwen2"),
        lambda out: tiny_models.token_classification(out, "qwen2"),
        lambda out: tiny_models.token_classification(out, "llama"),
        tiny_models.qwen_process_reward,
    ],
    ids=["llama", "mistral", "qwen2", "qwen2-token-cls", "llama-token-cls", "qwen-prm"],
)
def test_every_shipped_architecture_counts_what_its_checkpoint_holds(tmp_path, build):
    folder = build(tmp_path / "model")
    config = read_config(folder)
    params = parameter_count(config)
    assert params is not None, config["architectures"]
    assert params.total == stored_parameters(folder)
    untied_lm = config["architectures"][0].endswith("ForCausalLM") and not config.get(
        "tie_word_embeddings"
    )
    assert params.lm_head == (config["vocab_size"] * config["hidden_size"] if untied_lm else 0)


def test_published_sizes_from_their_configs():
    # config.json values of the published models (/work/notes/models.md, from their cards):
    # the counts they state.
    llama_1b = {
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 2048,
        "num_hidden_layers": 16,
        "intermediate_size": 8192,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 128256,
        "tie_word_embeddings": True,
    }
    qwen_15b = {
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": 1536,
        "num_hidden_layers": 28,
        "intermediate_size": 8960,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    }
    assert parameter_count(llama_1b).total == 1_235_814_400  # "1.23 billion parameters"
    qwen = parameter_count(qwen_15b)
    assert qwen.total == 1_543_714_304  # card: 1.54B, 1.31B non-embedding
    assert qwen.total - qwen.embedding == 1_310_340_608
    assert weight_bytes(qwen, "bfloat16") == 2 * 1_543_714_304


def test_unknown_architectures_and_missing_configs_give_none(tmp_path):
    assert parameter_count({"architectures": ["GPT2LMHeadModel"], "n_embd": 768}) is None
    assert parameter_count({"architectures": ["LlamaForCausalLM"]}) is None  # no shapes
    assert read_config(tmp_path / "nothing") is None
    assert read_config("no-such-org/no-such-model") is None  # not in the cache; no download
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"architectures": ["X"]}))
    assert read_config(tmp_path / "m") == {"architectures": ["X"]}
    assert isinstance(Parameters(1, 0, 0, False), Parameters)
