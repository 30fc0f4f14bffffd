"""Every PRM input format, token for token: separators exactly where each model reads them."""

from __future__ import annotations

import pytest

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
from hotncold.testing import tiny_models as tiny

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


def test_rlhflow_reads_each_step_where_the_assistant_answers(tok):
    fmt = RLHFlowFormat(tok)
    prompts = fmt.prompts(PROBLEM, STEPS)
    assert len(prompts) == len(STEPS)
    full = tok.encode(
        tok.apply_chat_template(fmt.conversation(PROBLEM, STEPS), tokenize=False),
        add_special_tokens=False,
    )
    plus = label_id(tok, "+")
    for k, prompt in enumerate(prompts):
        # the prompt is the chat up to, not including, the k-th "+" answer
        assert full[: len(prompt)] == prompt
        assert full[len(prompt)] == plus
        assert tok.decode(prompt).count(STEPS[k]) == 1
        assert tok.decode(full[: len(prompt) + 1]).count("+") == k + 1 + STEPS[k].count("+") + sum(
            s.count("+") for s in STEPS[:k]
        )
    # the first user turn is "problem step1", later turns the step alone
    first = tok.decode(prompts[0])
    assert f"{PROBLEM} {STEPS[0]}" in first
    assert first.rstrip().endswith("assistant")
    assert fmt.prompts(PROBLEM, STEPS, start=2) == prompts[2:]


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


def test_qwen_math_prm_reads_each_extra_0(tok):
    fmt = QwenMathPRMFormat(tok)
    enc = fmt.encode(PROBLEM, STEPS)
    sep = tok.convert_tokens_to_ids("<extra_0>")
    assert [enc.ids[p] for p in enc.positions] == [sep] * len(STEPS)
    assert enc.positions[-1] == len(enc.ids) - 1
    text = tok.decode(enc.ids)
    assert QwenMathPRMFormat.SYSTEM in text and PROBLEM in text
    assert text.endswith("<extra_0>".join(STEPS) + "<extra_0>")
    # between two separators lies exactly one step
    for k in range(1, len(STEPS)):
        between = enc.ids[enc.positions[k - 1] + 1 : enc.positions[k]]
        assert tok.decode(between) == STEPS[k]
    # a solution grown by a step keeps its prefix token for token
    shorter = fmt.encode(PROBLEM, STEPS[:2])
    assert enc.ids[: len(shorter.ids)] == shorter.ids
    assert enc.positions[:2] == shorter.positions
    with pytest.raises(FormatError, match="3 steps"):
        fmt.encode(PROBLEM, ["a<extra_0>b", "c", "d"])


def test_skywork_reads_each_appended_newline(tok):
    fmt = SkyworkFormat(tok)
    enc = fmt.encode(PROBLEM, STEPS)
    newline = tok.encode("\n", add_special_tokens=False)[-1]
    assert [enc.ids[p] for p in enc.positions] == [newline] * len(STEPS)
    prompt = tok.encode(tok.bos_token + PROBLEM + "\n", add_special_tokens=False)
    assert enc.ids[: len(prompt)] == prompt
    starts = [len(prompt), *(p + 1 for p in enc.positions[:-1])]
    for step, start, end in zip(STEPS, starts, enc.positions):
        assert enc.ids[start:end] == tok.encode(step, add_special_tokens=False)


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
