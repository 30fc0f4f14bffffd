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
from hotncold.prm.registry import prm_config
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
