"""Each model-based PRM through its real path: a tiny random-weight checkpoint of the right
architecture, loaded by vLLM on the CPU exactly as the published model would be.

For every PRM: one score per step in [0, 1]; the scores equal a plain transformers forward
pass over the documented input, built in each test as the model card or reference code builds
it, independently of hotncold's formats (so the format and the positions read are right); scoring a
solution step by step gives the same scores as scoring it whole, while the engine computes only
the new tokens. One engine per architecture, closed when its tests are done.
"""

from __future__ import annotations

import json

import pytest
import torch

from hotncold.config import PRMConfig
from hotncold.engine.vllm_engine import close_engine
from hotncold.prm.registry import build_prm, prm_config
from hotncold.testing import tiny_models as tiny

BLOCK = 32
PROBLEM = "Tom has 12 apples and buys 7 more. How many apples does he have now?"
SOLUTIONS = [
    ["Tom starts with 12 apples.", "He buys 7 more, so 12 + 7 = 19.", "The answer is 19."],
    ["Tom starts with 12 apples.", "He buys 7 more, so 12 + 7 = 20.", "The answer is 20."],
    ["12 + 7 = 19", "So the answer is $\\boxed{19}$."],
    ["Adding gives nineteen apples in total for Tom, who bought seven more than the twelve."],
]


def settings_at(name: str, path, **extra) -> PRMConfig:
    return prm_config(
        name,
        model_path=str(path),
        max_model_len=1024,
        cpu_kv_cache_gib=0.25,
        block_size=BLOCK,
        **extra,
    )


@pytest.fixture
def fresh():
    """Give a PRM a clean slate: no cached scores, no cached prefixes, zeroed counters."""

    def reset(prm):
        prm.reset()
        prm.engine.reset_prefix_cache()
        prm.stats.tokens = prm.stats.steps_scored = 0
        return prm

    return reset


def check_prm(prm, reference, fresh):
    """The checks every model-based PRM must pass; `reference(problem, steps)` is transformers."""
    fresh(prm)
    scores = prm.score([(PROBLEM, s) for s in SOLUTIONS])
    assert [len(s) for s in scores] == [len(s) for s in SOLUTIONS]
    assert all(0.0 <= v <= 1.0 for row in scores for v in row)
    assert len({round(v, 6) for row in scores for v in row}) > 3  # not a constant
    for steps, row in zip(SOLUTIONS, scores):
        assert row == pytest.approx(reference(PROBLEM, steps), abs=2e-4)
    # identical prefixes get identical scores
    assert scores[0][0] == scores[1][0]
    assert prm.stats.tokens > 0

    # grown one step at a time (as beam search does): same scores, fewer tokens
    fresh(prm)
    grown: list[list[float]] = [[] for _ in SOLUTIONS]
    per_round = []
    for depth in range(1, max(map(len, SOLUTIONS)) + 1):
        alive = [i for i, s in enumerate(SOLUTIONS) if len(s) >= depth]
        before = prm.stats.tokens
        rows = prm.score([(PROBLEM, SOLUTIONS[i][:depth]) for i in alive])
        for i, row in zip(alive, rows):
            grown[i] = row
        per_round.append(prm.stats.tokens - before)
    for row, expected in zip(grown, scores):
        assert row == pytest.approx(expected, abs=2e-4)
    incremental = prm.stats.tokens

    # full re-scoring at every round (search-and-learn's way) reads every prefix again
    fresh(prm)
    prm.incremental = False
    try:
        for depth in range(1, max(map(len, SOLUTIONS)) + 1):
            prm.score([(PROBLEM, s[:depth]) for s in SOLUTIONS if len(s) >= depth])
    finally:
        prm.incremental = True
    full = prm.stats.tokens
    assert incremental < full
    # a round after the first costs each solution its new step's tokens plus less than one KV
    # block (the cache keeps whole blocks only), never its prefix
    for depth in range(2, max(map(len, SOLUTIONS)) + 1):
        bound = sum(
            input_len(prm, s[:depth]) - input_len(prm, s[: depth - 1]) + BLOCK
            for s in SOLUTIONS
            if len(s) >= depth
        )
        assert per_round[depth - 1] <= bound
    return scores


def input_len(prm, steps) -> int:
    """Tokens the PRM reads for a solution: up to its last scored position."""
    if hasattr(prm.format, "encode"):
        return prm.format.encode(PROBLEM, steps).positions[-1] + 1
    return len(prm.format.prompts(PROBLEM, steps)[-1])


# --- generative PRMs (vLLM generate runner) ------------------------------------------------


def rlhflow_reference(path):
    """RLHFlow's prm_evaluate.py, written out: for step k the conversation up to user turn k
    and its assistant "+" through the chat template, then P(+) over {+, -} from the logits at
    position -3 (the tiny model has Llama 3's chat format, as RLHFlow's PRM does)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    candidates = [tok.encode("+")[-1], tok.encode("-")[-1]]  # plus_tag_id, minus_tag_id

    def reference(problem, steps):
        conversation, out = [], []
        for k, step in enumerate(steps):
            conversation.append(
                {"content": f"{problem} {step}" if k == 0 else step, "role": "user"}
            )
            conversation.append({"content": "+", "role": "assistant"})
            ids = tok.apply_chat_template(conversation)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[:, -3, candidates]
            out.append(logits.softmax(dim=-1)[0, 0].item())
        return out

    return reference


def math_shepherd_reference(path, labels):
    """Math-Shepherd's model card, written out: one pass over "{question} {step 1} ки\n...
    {step n} ки", the label logits at every position, P(+) where the token is the tag."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    tag = tok.encode("ки", add_special_tokens=False)[-1]

    def reference(problem, steps):
        output = "\n".join(f"{step} ки" for step in steps)
        ids = torch.tensor([tok.encode(f"{problem} {output}")])
        with torch.no_grad():
            scores = model(ids).logits[:, :, labels].softmax(dim=-1)[:, :, 0]
        return scores[ids == tag].tolist()

    return reference


@pytest.mark.slow
def test_rlhflow_prm(tmp_path_factory, fresh):
    path = tiny.causal_lm(tmp_path_factory.mktemp("llama"), "llama", chat="llama3")
    prm = build_prm(settings_at("rlhflow_8b", path))
    try:
        assert prm.engine.runner == "generate"
        check_prm(prm, rlhflow_reference(path), fresh)
    finally:
        close_engine(prm.engine)


@pytest.mark.slow
def test_math_shepherd_prm(tmp_path_factory, fresh):
    path = tiny.causal_lm(tmp_path_factory.mktemp("mistral"), "mistral")
    prm = build_prm(settings_at("math_shepherd", path))
    try:
        assert prm.engine.runner == "generate"
        check_prm(prm, math_shepherd_reference(path, prm.labels), fresh)
    finally:
        close_engine(prm.engine)


# --- head PRMs (vLLM pooling runner) -------------------------------------------------------


QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
"""Qwen2.5-Math-PRM-7B's model card: the system message of its example."""


@pytest.mark.slow
def test_qwen_math_prm(tmp_path_factory, fresh):
    """The shipped option (its system prompt) on a tiny Qwen2ForProcessRewardModel, against the
    model card's code written out: the chat with the steps joined by <extra_0> (one after the
    last), the 2-class head's positive probability at every <extra_0>."""
    import yaml
    from conftest import ROOT
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer, Qwen2Model

    path = tiny.qwen_process_reward(tmp_path_factory.mktemp("qwen_prm"))
    shipped = yaml.safe_load((ROOT / "hotncold/conf/prm/qwen_math_prm_7b.yaml").read_text())
    prm = build_prm(settings_at("qwen_math_prm_7b", path, system_prompt=shipped["system_prompt"]))
    weights = load_file(str(path / "model.safetensors"))
    body = Qwen2Model(AutoConfig.from_pretrained(path)).eval()
    body.load_state_dict({k[6:]: v for k, v in weights.items() if k.startswith("model.")})
    tok = AutoTokenizer.from_pretrained(path)
    step_sep_id = tok.encode("<extra_0>", add_special_tokens=False)[0]

    def reference(problem, steps):
        messages = [
            {"role": "system", "content": QWEN_SYSTEM},
            {"role": "user", "content": problem},
            {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"},
        ]
        conversation = tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=False
        )
        ids = torch.tensor([tok.encode(conversation, add_special_tokens=False)])
        with torch.no_grad():
            h = body(ids).last_hidden_state[0, ids[0] == step_sep_id]
            h = torch.relu(h @ weights["score.0.weight"].T + weights["score.0.bias"])
            logits = h @ weights["score.2.weight"].T + weights["score.2.bias"]
        return logits.softmax(-1)[:, 1].tolist()

    try:
        assert prm.engine.runner == "pooling"
        check_prm(prm, reference, fresh)
    finally:
        close_engine(prm.engine)


@pytest.mark.slow
def test_skywork_value_head(tmp_path_factory, fresh, monkeypatch):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    path = tiny.skywork_value_head(tmp_path_factory.mktemp("skywork"))
    # the converted folder goes to a fresh cache (set after the build, which reads the
    # embedded tokenizer from the real one)
    monkeypatch.setenv("HOTNCOLD_CACHE", str(tmp_path_factory.mktemp("cache")))
    prm = build_prm(settings_at("skywork_1.5b", path))
    weights = load_file(str(path / "model.safetensors"))
    lm = Qwen2ForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    tok = AutoTokenizer.from_pretrained(path)

    def reference(problem, steps):
        # skywork-o1-prm-inference's prepare_input, written out (step_token "\n"): the
        # problem's tokens after BOS, then the generator's text (the steps joined by the
        # default "\n\n") line by line, each line's tokens and a "\n" token; a step's score
        # is the value at the "\n" closing its last line (the blank line between two steps
        # is read too, but is no step's score)
        ids = tok.encode(tok.bos_token + problem + "\n", add_special_tokens=False)
        flags = [0] * len(ids)
        step_token_id = tok.encode("\n", add_special_tokens=False)[-1]
        for k, step in enumerate(steps):
            lines = ([""] if k else []) + step.split("\n")
            for i, line in enumerate(lines):
                ids += [*tok.encode(line, add_special_tokens=False), step_token_id]
                flags += [0] * (len(ids) - len(flags) - 1) + [int(i == len(lines) - 1)]
        with torch.no_grad():
            h = lm.model(torch.tensor([ids])).last_hidden_state[0, torch.tensor(flags) == 1]
        value = h @ weights["v_head.summary.weight"].T + weights["v_head.summary.bias"]
        return value[:, 0].sigmoid().tolist()

    try:
        check_prm(prm, reference, fresh)
        # converted once into the cache: a second PRM reuses the folder (and the engine)
        again = build_prm(settings_at("skywork_1.5b", path))
        assert again.engine is prm.engine
    finally:
        close_engine(prm.engine)


@pytest.mark.slow
def test_trl_token_classification(tmp_path_factory, fresh):
    from transformers import AutoModelForTokenClassification

    path = tiny.token_classification(tmp_path_factory.mktemp("trl"), "llama", separator="\n\n")
    prm = build_prm(settings_at("trl", path))
    assert prm.format.separator_ids == prm.tokenizer.encode("\n\n", add_special_tokens=False)
    model = AutoModelForTokenClassification.from_pretrained(path, dtype=torch.float32).eval()

    def reference(problem, steps):
        enc = prm.format.encode(problem, steps)
        with torch.no_grad():
            logits = model(torch.tensor([enc.ids])).logits[0, enc.positions]
        return logits.softmax(-1)[:, 1].tolist()

    try:
        check_prm(prm, reference, fresh)
    finally:
        close_engine(prm.engine)


@pytest.mark.slow
def test_judge_with_its_own_model_scores_a_real_run(real_engine, tmp_path_factory, tmp_path):
    """prm=judge prm.model_path=<checkpoint>: the judge is that model, on an engine of its own
    beside the generator's, asked the template's question after every step; the run's step
    scores are P(+) / (P(+) + P(-)) of its next token, as transformers computes them."""
    from conftest import tiny_model_config
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hotncold.config import Config, DatasetConfig, ModelConfig
    from hotncold.experiment.run import execute

    path = tiny.causal_lm(tmp_path_factory.mktemp("judge"), "llama")
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        n=2,
        model=tiny_model_config(ModelConfig),
        dataset=DatasetConfig(per_level=1, levels=[1, 2]),
        prm=settings_at("judge", path, agg_strategy="min"),
    )
    execute(cfg)
    judge = build_prm(cfg.prm)  # the run's judge: its engine is cached
    try:
        assert judge.engine is not real_engine and judge.engine.path == str(path)
        records = [
            json.loads(x) for x in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()
        ]
        info = json.loads((tmp_path / "run" / "run.json").read_text())
        assert info["status"] == "finished" and info["totals"]["prm_tokens"] > 0

        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        tok = AutoTokenizer.from_pretrained(path)
        labels = [tok.encode(t, add_special_tokens=False)[-1] for t in ("+", "-")]
        checked = 0
        for record in records:
            problem = record["problem"]["problem"]
            for c in record["completions"]:
                assert len(c["step_scores"]) == len(c["steps"])
                expected = []
                for k in range(len(c["steps"])):
                    question = (
                        cfg.prm.judge_template.replace("{problem}", problem)
                        .replace("{steps}", "\n".join(c["steps"][: k + 1]))
                        .replace("{positive}", "+")
                        .replace("{negative}", "-")
                    )
                    ids = tok.apply_chat_template(
                        [{"role": "user", "content": question}], add_generation_prompt=True
                    )["input_ids"]
                    with torch.no_grad():
                        logits = model(torch.tensor([ids])).logits[0, -1, labels]
                    expected.append(logits.softmax(-1)[0].item())
                assert c["step_scores"] == pytest.approx(expected, abs=2e-4)
                assert c["score"] == pytest.approx(min(expected) if expected else 0.0, abs=2e-4)
                checked += len(expected)
        assert checked > 0
    finally:
        close_engine(judge.engine)


def test_trl_refuses_a_causal_lm(tmp_path_factory):
    path = tiny.causal_lm(tmp_path_factory.mktemp("not_trl"), "llama")
    with pytest.raises(ValueError, match="not a token-classification PRM"):
        build_prm(settings_at("trl", path))


def test_skywork_conversion_renames_the_value_head_and_links_other_shards(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from hotncold.prm.heads import token_classification_folder

    source = tiny.skywork_value_head(tmp_path / "skywork")
    plain = tiny.causal_lm(tmp_path / "plain", "qwen2")
    monkeypatch.setenv("HOTNCOLD_CACHE", str(tmp_path / "cache"))  # after the builds (see above)
    # re-shard it: the body in one file, the LM head and value head in another
    weights = load_file(str(source / "model.safetensors"))
    (source / "model.safetensors").unlink()
    heads = {k: v for k, v in weights.items() if k.startswith(("lm_head.", "v_head."))}
    body = {k: v for k, v in weights.items() if k not in heads}
    save_file(body, str(source / "model-00001-of-00002.safetensors"))
    save_file(heads, str(source / "model-00002-of-00002.safetensors"))
    index = {k: "model-00001-of-00002.safetensors" for k in body}
    index.update({k: "model-00002-of-00002.safetensors" for k in heads})
    (source / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": index})
    )

    folder = token_classification_folder(str(source))
    assert token_classification_folder(str(source)) == folder  # converted once
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForTokenClassification"]
    # one label, said both ways transformers reads it (num_labels, id2label); vLLM sizes the
    # score head from what transformers' config reports
    assert (config["num_labels"], config["id2label"]) == (1, {"0": "LABEL_0"})
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(folder).num_labels == 1
    assert (folder / "model-00001-of-00002.safetensors").is_symlink()
    converted = load_file(str(folder / "model-00002-of-00002.safetensors"))
    assert set(converted) == {"score.weight", "score.bias"}
    assert torch.equal(converted["score.weight"], weights["v_head.summary.weight"])
    mapping = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    assert mapping["score.weight"] == "model-00002-of-00002.safetensors"
    assert "lm_head.weight" not in mapping and "v_head.summary.weight" not in mapping
    assert (folder / "tokenizer.json").is_file()

    with pytest.raises(ValueError, match="no value head"):
        token_classification_folder(str(plain))
