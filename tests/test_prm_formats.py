"""Every PRM input format, token for token: separators exactly where each model reads them."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

from hotncold.prm.formats import (
    FormatError,
    JudgeFormat,
    MathShepherdFormat,
    QwenMathPRMFormat,
    RLHFlowFormat,
    SkyworkFormat,
    TRLFormat,
    label_id,
)
from hotncold.prm.registry import prm_config
from hotncold.testing import tiny_models as tiny

CONF = ROOT / "hotncold" / "conf"

PROBLEM = "Tom has 12 apples and buys 7 more. How many apples does he have?"
STEPS = [
    "Tom starts with 12 apples.",
    "He buys 7 more: 12 + 7 = 19.",
    "The answer is $\\boxed{19}$.",
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return tiny.tokenizer(tmp_path_factory.mktemp("tokenizer"))


def test_labels_are_single_tokens(tok):
    for text in ("+", "-", "ки", "<extra_0>"):
        assert len(tok.encode(text, add_special_tokens=False)) == 1, text
    assert label_id(tok, "+") != label_id(tok, "-")


@pytest.fixture(scope="module")
def llama3_tok(tmp_path_factory):
    return tiny.tokenizer(tmp_path_factory.mktemp("llama3_tokenizer"), chat="llama3")


def llama3_turn(role: str, content: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"


def test_rlhflow_reads_where_its_reference_code_reads(llama3_tok):
    """RLHFlow's prm_evaluate.py: for step k, the conversation [user "problem step1",
    assistant "+", user step2, assistant "+", ..., user step k, assistant "+"] through the
    chat template, then `logits[:, -3, [+, -]]`: with Llama 3's turns, which end in
    "+<|eot_id|>", position -3 is the one predicting that "+". Written out by hand here."""
    tok = llama3_tok
    plus = tok.encode("+", add_special_tokens=False)[-1]  # the reference's plus_tag_id
    prompts = RLHFlowFormat(tok).prompts(PROBLEM, STEPS)
    assert len(prompts) == len(STEPS)
    chat = "<|begin_of_text|>"
    for k, step in enumerate(STEPS):
        chat += llama3_turn("user", f"{PROBLEM} {step}" if k == 0 else step)
        chat += llama3_turn("assistant", "+")
        reference = tok.encode(chat, add_special_tokens=False)
        assert reference[-2:] == [plus, tok.convert_tokens_to_ids("<|eot_id|>")]
        # the prompt is everything up to and including position -3: its next token is "+"
        assert prompts[k] == reference[:-2]
    assert RLHFlowFormat(tok).prompts(PROBLEM, STEPS, start=2) == prompts[2:]


def test_rlhflow_on_a_chatml_template_ends_where_the_assistant_answers(tok):
    # the embedded tokenizer's own template (ChatML, with SmolLM2's default system turn): the
    # prompt for step k ends with the assistant header of turn k, just before its "+"
    prompts = RLHFlowFormat(tok).prompts(PROBLEM, STEPS)
    system = (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n"
    )
    head = system + f"<|im_start|>user\n{PROBLEM} {STEPS[0]}<|im_end|>\n<|im_start|>assistant\n"
    expected = [head]
    for step in STEPS[1:]:
        expected.append(
            expected[-1]
            + f"+<|im_end|>\n<|im_start|>user\n{step}<|im_end|>\n<|im_start|>assistant\n"
        )
    assert prompts == [tok.encode(text, add_special_tokens=False) for text in expected]


def test_math_shepherd_reads_each_step_at_its_tag(tok):
    fmt = MathShepherdFormat(tok)
    prompts = fmt.prompts(PROBLEM, STEPS)
    text, _ = fmt.text(PROBLEM, STEPS)
    assert text == f"{PROBLEM} {STEPS[0]} ки\n{STEPS[1]} ки\n{STEPS[2]} ки"
    tag = label_id(tok, "ки")
    for k, prompt in enumerate(prompts):
        assert prompt[-1] == tag
        assert prompt.count(tag) == k + 1
        assert prompts[-1][: len(prompt)] == prompt
    assert fmt.prompts(PROBLEM, STEPS, start=1) == prompts[1:]
    with_blank_lines = MathShepherdFormat(tok, separator="\n\n")
    assert (
        with_blank_lines.text(PROBLEM, STEPS[:2])[0] == f"{PROBLEM} {STEPS[0]} ки\n\n{STEPS[1]} ки"
    )


QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
"""Qwen2.5-Math-PRM-7B's model card: the system message of its example."""


def test_qwen_math_prm_reads_each_extra_0_as_its_model_card_does(tok):
    """The card: messages [system, user: problem, assistant: "<extra_0>".join(steps) +
    "<extra_0>"], `apply_chat_template(tokenize=False, add_generation_prompt=False)`, then
    the head's outputs where the token is <extra_0>. Written out by hand in Qwen's ChatML."""
    card = (
        f"<|im_start|>system\n{QWEN_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n"
        "<|im_start|>assistant\n"
        "Tom starts with 12 apples.<extra_0>He buys 7 more: 12 + 7 = 19.<extra_0>"
        "The answer is $\\boxed{19}$.<extra_0><|im_end|>\n"
    )
    ids = tok.encode(card, add_special_tokens=False)
    separator = tok.convert_tokens_to_ids("<extra_0>")
    positions = [i for i, t in enumerate(ids) if t == separator]
    assert len(positions) == 3
    enc = QwenMathPRMFormat(tok, system_prompt=QWEN_SYSTEM).encode(PROBLEM, STEPS)
    assert enc.positions == positions
    # the same tokens up to the last separator; the closing <|im_end|> is left out (a causal
    # model's outputs at the separators cannot depend on it)
    assert enc.ids == ids[: positions[-1] + 1]
    # the shipped option's system prompt is the card's, and the format's default
    shipped = yaml.safe_load((CONF / "prm" / "qwen_math_prm_7b.yaml").read_text())
    assert shipped["system_prompt"] == QWEN_SYSTEM
    assert QwenMathPRMFormat(tok).encode(PROBLEM, STEPS) == enc
    # a solution grown by a step keeps its prefix token for token
    shorter = QwenMathPRMFormat(tok).encode(PROBLEM, STEPS[:2])
    assert enc.ids[: len(shorter.ids)] == shorter.ids and enc.positions[:2] == shorter.positions
    with pytest.raises(FormatError, match="3 steps"):
        QwenMathPRMFormat(tok).encode(PROBLEM, ["a<extra_0>b", "c", "d"])


def prepare_input(problem, response, tokenizer, step_token):
    """skywork-o1-prm-inference @ 719b56b1 model_utils/io_utils.py, the reference input
    (quoted in /work/notes/models.md; search-and-learn copies it unchanged). Kept verbatim."""
    prompt_ids = tokenizer.encode(tokenizer.bos_token + problem + "\n")
    response_ids = []
    steps = []
    reward_flags = [0] * len(prompt_ids)
    step_token_id = tokenizer.encode(step_token)[-1]
    for idx, step in enumerate(response.split(step_token)):  # noqa: B007  (verbatim)
        if step != "":
            step_ids = tokenizer.encode(step)
        else:
            step_ids = []
        step_ids += [step_token_id]
        step = step + step_token
        flag = [0] * len(step_ids)
        flag[-1] = 1
        response_ids.extend(step_ids)
        reward_flags.extend(flag)
        steps.append(step)
    input_ids = prompt_ids + response_ids
    return input_ids, steps, reward_flags


SKYWORK_RESPONSES = [
    ("\n\n", ["Tom starts with 12 apples.", "He buys 7 more: 12 + 7 = 19.", "So $\\boxed{19}$."]),
    # a step of several lines: every line is flagged, the step's score is its last line's
    ("\n\n", ["First, add:\n12 + 7 = 19.", "Check:\n19 - 7 = 12.\nIt holds."]),
    ("\n", ["12 + 7 = 19.", "The answer is 19."]),  # the embedded model writes line steps
    ("\n\n", ["Only one step."]),
]


@pytest.mark.parametrize(("joiner", "steps"), SKYWORK_RESPONSES)
def test_skywork_builds_the_reference_input_of_the_generators_text(tok, joiner, steps):
    response = joiner.join(steps)
    ids, pieces, flags = prepare_input(PROBLEM, response, tok, "\n")
    enc = SkyworkFormat(tok, "\n", joiner).encode(PROBLEM, steps)
    assert enc.ids == ids  # token for token, blank lines included
    flagged = [i for i, f in enumerate(flags) if f]
    assert set(enc.positions) <= set(flagged)
    # step k is read at the flag of the reference's piece holding its last line
    want, at = [], 0
    for step in steps:
        at = pieces.index(step.split("\n")[-1] + "\n", at)
        want.append(flagged[at])
        at += 1
    assert enc.positions == want
    if len(steps) > 1:  # a longer solution's input extends a shorter one's (incremental)
        shorter = SkyworkFormat(tok, "\n", joiner).encode(PROBLEM, steps[:-1])
        assert enc.ids[: len(shorter.ids)] == shorter.ids
        assert enc.positions[: len(shorter.positions)] == shorter.positions


def test_skywork_input_spelled_out_for_two_paragraph_steps(tok):
    nl = tok.encode("\n")[-1]
    enc = SkyworkFormat(tok, "\n", "\n\n").encode("Q?", ["a = 1", "b = 2"])
    # BOS + "Q?\n" | "a = 1" nl | (blank line) nl | "b = 2" nl
    head = tok.encode(tok.bos_token + "Q?\n")
    assert enc.ids == [*head, *tok.encode("a = 1"), nl, nl, *tok.encode("b = 2"), nl]
    assert enc.positions == [len(head) + len(tok.encode("a = 1")), len(enc.ids) - 1]


def test_skywork_needs_a_delimiter_that_starts_a_line(tok):
    with pytest.raises(FormatError, match="must start with"):
        SkyworkFormat(tok, "\n", "Step:")


def test_trl_labels_the_last_separator_token(tok):
    fmt = TRLFormat(tok, separator="\n")
    enc = fmt.encode(PROBLEM, STEPS)
    sep = tok.encode("\n", add_special_tokens=False)
    assert enc.ids[0] == tok.bos_token_id
    assert enc.ids[1 : 1 + len(tok.encode(PROBLEM, add_special_tokens=False))] == tok.encode(
        PROBLEM, add_special_tokens=False
    )
    assert [enc.ids[p] for p in enc.positions] == [sep[-1]] * len(STEPS)
    # a separator of several tokens: the label sits on its last token
    long = TRLFormat(tok, separator=" ки\n\n")
    sep_ids = tok.encode(" ки\n\n", add_special_tokens=False)
    assert len(sep_ids) > 1
    enc = long.encode(PROBLEM, STEPS)
    for p in enc.positions:
        assert enc.ids[p - len(sep_ids) + 1 : p + 1] == sep_ids


def test_judge_asks_about_the_last_step_and_shares_prefixes(tok):
    fmt = JudgeFormat(
        tok, "P: {problem}\nS:\n{steps}\nIs the last step right? {positive}/{negative}"
    )
    prompts = fmt.prompts(PROBLEM, STEPS)
    assert len(prompts) == len(STEPS)
    for k, prompt in enumerate(prompts):
        text = tok.decode(prompt)
        assert "\n".join(STEPS[: k + 1]) + "\nIs the last step right? +/-" in text
        assert STEPS[k + 1 :] == [] or STEPS[k + 1] not in text
        assert text.rstrip().endswith("assistant")
    # the request for step k+1 repeats the one for step k up to the end of step k
    head = tok.encode(
        tok.apply_chat_template(
            [{"role": "user", "content": f"P: {PROBLEM}\nS:\n{STEPS[0]}"}], tokenize=False
        ),
        add_special_tokens=False,
    )
    shared = 0
    while shared < min(map(len, prompts[:2])) and prompts[0][shared] == prompts[1][shared]:
        shared += 1
    assert shared >= len(head) - 3  # all but the chat turn's closing tokens
    # braces in a problem are text, not placeholders
    assert "{steps}" in fmt.message("a {steps} b", ["x"])


# --- Math-Shepherd: the card's token ids, checked at start -----------------------------------


def test_math_shepherd_ids_are_checked_against_its_model_card(tok):
    from hotncold.prm.generative import MATH_SHEPHERD_IDS, check_card_ids

    card = prm_config("math_shepherd", model_path="peiyi9979/math-shepherd-mistral-7b-prm")
    # the card: candidate_tokens [648, 387], step_tag_id 12902
    assert MATH_SHEPHERD_IDS == {"+": 648, "-": 387, "ки": 12902}
    check_card_ids(card, tok, [648, 387], 12902)  # the card's ids pass
    with pytest.raises(FormatError, match=r"gives token ids \{'\+': 10, '-': 387, 'ки': 12902\}"):
        check_card_ids(card, tok, [10, 387], 12902)
    other = prm_config("math_shepherd", model_path="/my/retrained-shepherd")
    check_card_ids(other, tok, [10, 11], 12)  # another checkpoint: its own ids are fine
    yes_no = prm_config(
        "math_shepherd",
        model_path="peiyi9979/math-shepherd-mistral-7b-prm",
        positive_token="Yes",
        negative_token="No",
    )
    check_card_ids(yes_no, tok, [10, 11], 12902)  # other labels than the card's: not its ids


def test_a_math_shepherd_tokenizer_that_disagrees_with_its_card_stops_before_loading(
    tmp_path, hub_cache, monkeypatch
):
    from fake_hub import cached_repo

    import hotncold.engine.vllm_engine
    from hotncold.prm.registry import build_prm

    tiny.tokenizer(tmp_path / "tok")  # not the card's tokenizer: other ids
    files = {f.name: f.read_bytes() for f in (tmp_path / "tok").iterdir() if f.is_file()}
    files["config.json"] = {"architectures": ["MistralForCausalLM"], "model_type": "mistral"}
    cached_repo(hub_cache, "peiyi9979/math-shepherd-mistral-7b-prm", files)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", pytest.fail)
    with pytest.raises(FormatError, match="but its model card reads"):
        build_prm(prm_config("math_shepherd", model_path="peiyi9979/math-shepherd-mistral-7b-prm"))
