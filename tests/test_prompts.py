"""The prompt group: search-and-learn's prompting rendered exactly, hotncold's own, and the
explicit table of which chat template each model family gets.

The expected prompts are written out by hand from search-and-learn's source
(huggingface/search-and-learn @ 6f81cac8: src/sal/config.py:50 `system_prompt`, :51
`custom_chat_template`; search/utils.py `build_conv`), never built by the code under test. The
tokenizers are made here from a handful of tokens: one that adds a BOS token to every text it
encodes, as Llama 3's does, and one that adds nothing, as Qwen2's.
"""

from __future__ import annotations

import pytest
from conftest import ROOT
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import hotncold.config.hydra  # noqa: F401  (registers the schema)
from hotncold.config import ModelConfig, PromptConfig
from hotncold.config.schemas import DEFAULT_SYSTEM_PROMPT
from hotncold.engine.prompts import build_prompt, chat_template_for
from hotncold.engine.rules import FAMILIES
from hotncold.engine.vllm_engine import VLLMEngine

CONF = ROOT / "hotncold" / "conf"
PROBLEM = "What is $1+1$?"

# search-and-learn's system prompt, src/sal/config.py:50 (written out from the source line)
SAL_SYSTEM = (
    "Solve the following math problem efficiently and clearly:\n\n"
    "- For simple problems (2 steps or fewer):\n"
    "Provide a concise solution with minimal explanation.\n\n"
    "- For complex problems (3 steps or more):\n"
    "Use this step-by-step format:\n\n"
    "## Step 1: [Concise description]\n"
    "[Brief explanation and calculations]\n\n"
    "## Step 2: [Concise description]\n"
    "[Brief explanation and calculations]\n\n"
    "...\n\n"
    "Regardless of the approach, always conclude with:\n\n"
    "Therefore, the final answer is: $\\boxed{answer}$. I hope it is correct.\n\n"
    "Where [answer] is just the final number or expression that solves the problem."
)

# A Qwen2.5-style ChatML template (its non-tool part, with Qwen's default system line)
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) "
    "or message.role == 'assistant' %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def tokenizer(specials: list[str], bos: str | None, chat_template: str | None = None):
    """A word-level tokenizer over a few words; with `bos`, every encoded text starts with it."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, "[UNK]", "1"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, vocab[bos])]
        )
    out = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token=bos)
    out.add_special_tokens({"additional_special_tokens": specials})
    out.chat_template = chat_template
    return out


class TokenizerEngine:
    """Just enough engine to render chats: the real `VLLMEngine.format_chat` on a tokenizer."""

    format_chat = VLLMEngine.format_chat

    def __init__(self, tok) -> None:
        self.tokenizer = tok


def option(group: str, name: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", [f"{group}={name}", "out_dir=/tmp/x", "overrides=[]"])
    schema = {"prompt": PromptConfig, "model": ModelConfig}[group]
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), cfg[group]))


def llama() -> ModelConfig:
    return option("model", "llama-3.2-1b-instruct")


def test_sal_prompt_on_llama_is_search_and_learns_text_with_one_bos():
    tok = tokenizer(LLAMA_SPECIALS, bos="<|begin_of_text|>")
    prompt = build_prompt(TokenizerEngine(tok), option("prompt", "sal"), llama(), PROBLEM)
    expected = (
        "<|begin_of_text|>"  # vLLM adds it to search-and-learn's text prompts
        "<|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\n"
        "Today Date: 26 Jul 2024\n\n"
        f"{SAL_SYSTEM}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{PROBLEM}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert prompt == expected
    # The engine encodes prompts without special tokens: exactly the ids search-and-learn's
    # vLLM gets from the template's text with them, one BOS and no second one.
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert ids == tok(expected.removeprefix("<|begin_of_text|>"))["input_ids"]
    assert ids.count(bos) == 1 and ids[0] == bos


def test_the_date_is_the_configured_one_never_the_calendars():
    tok = tokenizer(LLAMA_SPECIALS, bos="<|begin_of_text|>")
    sal = option("prompt", "sal")
    sal.date_string = "01 Dec 2026"
    prompt = build_prompt(TokenizerEngine(tok), sal, llama(), PROBLEM)
    assert "Today Date: 01 Dec 2026\n\n" in prompt and "26 Jul 2024" not in prompt


def test_sal_prompt_on_qwen_keeps_the_models_own_template_and_adds_nothing():
    tok = tokenizer(["<|im_start|>", "<|im_end|>"], bos=None, chat_template=QWEN_TEMPLATE)
    for name in ("qwen2.5-1.5b-instruct", "acemath-7b-instruct"):
        prompt = build_prompt(
            TokenizerEngine(tok), option("prompt", "sal"), option("model", name), PROBLEM
        )
        assert prompt == (
            f"<|im_start|>system\n{SAL_SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{PROBLEM}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )


def test_hotncold_prompt_on_llama_has_no_date_header_and_writes_its_bos():
    tok = tokenizer(LLAMA_SPECIALS, bos="<|begin_of_text|>")
    prompt = build_prompt(TokenizerEngine(tok), option("prompt", "hotncold"), llama(), PROBLEM)
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"{DEFAULT_SYSTEM_PROMPT}<|eot_id|>"
        f"<|start_header_id|>user<|end_header_id|>\n\n{PROBLEM}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_qwen_math_prompt_is_the_cards_instruction_after_the_problem():
    tok = tokenizer(["<|im_start|>", "<|im_end|>"], bos=None, chat_template=QWEN_TEMPLATE)
    model = option("model", "acemath-7b-instruct")
    prompt = build_prompt(TokenizerEngine(tok), option("prompt", "qwen_math"), model, PROBLEM)
    assert prompt == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n"
        f"<|im_start|>user\n{PROBLEM}\nPlease reason step by step, and put your final answer "
        "within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"
    )


# Which chat format each shipped model declares, and which template each prompt gives it:
# search-and-learn uses its own template for Llama only (recipes/Llama-3.2-*), the model's own
# for Qwen2.5 and AceMath (their recipes set custom_chat_template: null).
FAMILY_OF = {
    "smollm2_135m": "smollm2",
    "llama-3.2-1b-instruct": "llama3",
    "llama-3.2-3b-instruct": "llama3",
    "qwen2.5-1.5b-instruct": "qwen2",
    "qwen2.5-3b-instruct": "qwen2",
    "acemath-7b-instruct": "qwen2",
}


def test_every_model_declares_its_family_and_every_prompt_maps_it_explicitly():
    shipped = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
    assert shipped == sorted(FAMILY_OF)
    sal, ours = option("prompt", "sal"), option("prompt", "hotncold")
    for name, family in FAMILY_OF.items():
        model = option("model", name)
        assert model.family == family and family in FAMILIES
        if family == "llama3":
            assert chat_template_for(sal, model).startswith("{%- if custom_tools is defined %}")
            assert "strftime_now" in chat_template_for(sal, model)
            assert "Today Date" not in chat_template_for(ours, model)
        else:
            assert chat_template_for(sal, model) is None  # the tokenizer's own
            assert chat_template_for(ours, model) is None
    assert sal.add_special_tokens and not ours.add_special_tokens


def test_the_study_preset_uses_search_and_learns_recipe():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "config",
            ["experiment=hot_vs_cold", "out_dir=/tmp/x", "overrides=[]"],
            return_hydra_config=True,
        )
        beam = compose(
            "config", ["experiment=hot_vs_cold", "approach=sal_beam_search", "out_dir=/tmp/x"]
        )
    assert cfg.prompt.name == "sal" and cfg.prompt.date_string == "26 Jul 2024"
    # its arms: Best-of-N and DVTS once at n=256, search-and-learn's beam search at each n
    arms = cfg.hydra.sweeper.params.arm.split(",")
    assert {a.rsplit("_n", 1)[0] for a in arms} == {"best_of_n", "sal_beam_search", "dvts"}
    a = beam.approach
    assert (a.name, a.beam_width, a.num_iterations, a.lookahead, a.filter_duplicates) == (
        "beam_search",
        4,
        40,
        0,
        True,
    )
    m = cfg.model
    assert (m.family, m.max_tokens, m.top_p, m.step_delimiter) == ("llama3", 2048, 1.0, "\n\n")
    assert cfg.prm.name == "rlhflow_8b" and cfg.prm.agg_strategy == "last"
    assert list(cfg.temperature["values"]) == [0.8]  # outside the sweep: search-and-learn's T


@pytest.mark.slow
def test_sal_prompt_through_the_real_engine(real_engine):
    """The embedded SmolLM2 (its own ChatML template) with search-and-learn's prompting."""
    prompt = build_prompt(real_engine, option("prompt", "sal"), ModelConfig(), PROBLEM)
    assert prompt == (
        f"<|im_start|>system\n{SAL_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n"
    )
