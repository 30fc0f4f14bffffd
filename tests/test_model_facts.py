"""Parameter counts from config.json alone, checked against the tensors real checkpoints hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from published_configs import LLAMA_3_2_1B, QWEN_2_5_1_5B, QWEN_MATH_PRM_7B

from hotncold.engine import model_facts
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
    assert parameter_count(LLAMA_3_2_1B).total == 1_235_814_400  # "1.23 billion parameters"
    qwen = parameter_count(QWEN_2_5_1_5B)
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


# --- the context vLLM derives, and KV bytes per token ---------------------------------------

# (config.json changes, the max_model_len vLLM derives), written from vLLM's
# _get_and_verify_max_len (config/model.py, 0.21-0.33; the CPU build's is the same code)
DERIVED = [
    ({"max_position_embeddings": 4096}, 4096),
    (
        {"max_position_embeddings": 4096, "rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        8192,
    ),
    ({"max_position_embeddings": 4096, "rope_scaling": {"type": "dynamic", "factor": 4.0}}, 16384),
    (  # already scaled: llama3, yarn (0.30+; 0.21-0.29 accepted more)
        {"max_position_embeddings": 131072, "rope_scaling": LLAMA_3_2_1B["rope_scaling"]},
        131072,
    ),
    (
        {
            "max_position_embeddings": 32768,
            "rope_scaling": {
                "rope_type": "yarn",
                "factor": 4.0,
                "original_max_position_embeddings": 32768,
            },
        },
        32768,
    ),
    ({"max_position_embeddings": 8192, "seq_length": 2048}, 2048),  # the smallest key wins
    ({"max_position_embeddings": 8192, "model_max_length": 16384}, 16384),  # Cohere's override
    ({}, 2048),  # no key at all: vLLM's default, with a warning
]


def _without_lengths(config):
    out = dict(config)
    for key in (*model_facts.POSITION_KEYS, "rope_scaling", "rope_parameters"):
        out.pop(key, None)
    return out


@pytest.mark.parametrize(("changes", "limit"), DERIVED, ids=[str(d[1]) for d in DERIVED])
def test_max_positions_follow_vllms_derivation(changes, limit):
    config = {**_without_lengths(QWEN_MATH_PRM_7B), **changes}
    assert model_facts.max_positions(config).limit == limit


def test_published_context_limits():
    assert model_facts.max_positions(QWEN_MATH_PRM_7B) == model_facts.Positions(
        4096, "max_position_embeddings"
    )
    assert model_facts.max_positions(LLAMA_3_2_1B).limit == 131072
    # the tokenizer's model_max_length caps only pooling models with absolute positions
    tokenizer = {"model_max_length": 512}
    bert = {"max_position_embeddings": 1024, "position_embedding_type": "absolute"}
    assert model_facts.max_positions(bert, tokenizer, pooling=True).limit == 512
    assert model_facts.max_positions(bert, tokenizer, pooling=False).limit == 1024
    assert model_facts.max_positions(QWEN_MATH_PRM_7B, tokenizer, pooling=True).limit == 4096


def test_kv_bytes_per_token_of_published_models():
    # 2 (K and V) x layers x KV heads x head dim x bytes
    assert model_facts.kv_bytes_per_token(QWEN_MATH_PRM_7B, "bfloat16") == 2 * 28 * 4 * 128 * 2
    llama_8b = {
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_size": 4096,
    }
    assert model_facts.kv_bytes_per_token(llama_8b, "bfloat16") == 131072
    smol = {
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "hidden_size": 576,
    }
    assert model_facts.kv_bytes_per_token(smol, "float32") == 2 * 30 * 3 * 64 * 4  # 46 KB
    assert model_facts.kv_bytes_per_token({"hidden_size": 4}, "float32") is None


@pytest.mark.slow
def test_max_positions_agree_with_vllm_itself(tmp_path):
    """The oracle: vLLM's own ModelConfig on folders holding each config.json (no weights)."""
    import shutil

    from vllm.config import ModelConfig as VLLMModelConfig

    from hotncold.engine.embedded import prepare

    source = prepare()
    base = json.loads((source / "config.json").read_text())
    for i, (changes, limit) in enumerate(DERIVED[:-1]):  # vLLM warns and uses 2048 for the last
        folder = tmp_path / f"m{i}"
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors"))
        config = {**_without_lengths(base), **changes}
        (folder / "config.json").write_text(json.dumps(config))
        derived = VLLMModelConfig(model=str(folder)).max_model_len
        assert derived == limit == model_facts.max_positions(config).limit, changes
