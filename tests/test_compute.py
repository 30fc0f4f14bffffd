"""FLOPs accounting: parameter splits from real checkpoints, exact per-problem charges on the
scripted engine, and the real engine's prefix cache left uncharged."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from fakes import ScriptedEngine, problem_of

import hotncold.engine.vllm_engine
from hotncold.config import ApproachConfig, Config, DatasetConfig, ModelConfig, TemperatureConfig
from hotncold.data.arithmetic import generate
from hotncold.engine.model_facts import parameter_count, read_config, token_cost
from hotncold.engine.requests import Charge, GenerationRequest
from hotncold.experiment.compute import ModelCost, RunCosts
from hotncold.experiment.run import execute
from hotncold.prm.base import PRM, ItemScores, PRMCharge
from hotncold.testing import tiny_models

# SmolLM2-135M (the embedded model), counted from its converted folder's tensors in
# tests/test_model_facts.py: 134,515,008 parameters, a tied 49152 x 576 embedding.
SMOL_EMBEDDING = 49152 * 576
SMOL_BODY = 134_515_008 - SMOL_EMBEDDING


def tensors(folder: Path) -> dict[str, int]:
    """Every tensor of a checkpoint folder and its number of elements."""
    from safetensors import safe_open

    sizes = {}
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                n = 1
                for d in f.get_slice(name).get_shape():
                    n *= d
                sizes[name] = n
    return sizes


def test_the_embedded_models_split_matches_its_tensors():
    from hotncold.engine.embedded import prepare

    sizes = tensors(prepare())
    cost = token_cost(parameter_count(read_config(prepare())))
    embedding = sizes["model.embed_tokens.weight"]
    assert "lm_head.weight" not in sizes  # tied: the embedding matrix is the LM head
    assert cost.body == sum(sizes.values()) - embedding == SMOL_BODY
    assert cost.vocab == embedding == SMOL_EMBEDDING


@pytest.mark.parametrize(
    "build",
    [
        lambda out: tiny_models.causal_lm(out, "llama"),
        lambda out: tiny_models.causal_lm(out, "mistral"),
        lambda out: tiny_models.token_classification(out, "qwen2"),
        tiny_models.qwen_process_reward,
    ],
    ids=["llama-lm", "mistral-lm", "qwen2-token-cls", "qwen-prm"],
)
def test_every_prm_architectures_split_matches_its_tensors(tmp_path, build):
    folder = build(tmp_path / "model")
    sizes = tensors(folder)
    cost = token_cost(parameter_count(read_config(folder)))
    embedding = sizes["model.embed_tokens.weight"]
    head = sizes.get("lm_head.weight", 0)  # the tiny causal LMs are untied; heads have none
    assert cost.body == sum(sizes.values()) - embedding - head
    assert cost.vocab == head


def test_flops_of_one_problem_by_hand():
    costs = RunCosts(
        generator=ModelCost("g", body=1000, vocab=100),
        prm=ModelCost("p", body=5000, vocab=300),
        prm_model_free=False,
        prm_logits="step",
    )
    out = costs.problem(Charge(prompt_tokens=40, generated_tokens=10), PRMCharge(70, 3))
    # generator: 50 tokens through the body, 10 logits rows; PRM: 70 tokens, one row a step
    assert out["generator_flops"] == 2 * (1000 * 50 + 100 * 10)
    assert out["prm_flops"] == 2 * (5000 * 70 + 300 * 3)
    assert out["flops"] == out["generator_flops"] + out["prm_flops"]
    pooling = RunCosts(costs.generator, ModelCost("p", 5000, 0), False, "none")
    assert pooling.problem(Charge(40, 10), PRMCharge(70, 3))["prm_flops"] == 2 * 5000 * 70
    every_token = RunCosts(costs.generator, costs.generator, False, "token")
    assert every_token.problem(Charge(0, 0), PRMCharge(70, 3))["prm_flops"] == 2 * 1100 * 70
    free = RunCosts(costs.generator, None, True, "none")
    assert free.problem(Charge(40, 10), PRMCharge(0, 3))["prm_flops"] == 0.0
    unknown = RunCosts(None, None, False, "step").problem(Charge(40, 10), PRMCharge(7, 3))
    assert unknown["generator_flops"] is None and unknown["flops"] is None


class WordPRM(PRM):
    """Scores 0.5; counts one token per word of each new step."""

    def _score_new(self, items):
        return [
            ItemScores(
                [0.5] * (len(i.steps) - i.start), sum(len(s.split()) for s in i.steps[i.start :])
            )
            for i in items
        ]


def test_prm_charges_each_problem_its_own_new_steps():
    prm = WordPRM()
    prm.score([("p1", ["a b", "c"]), ("p2", ["d e f"])])
    prm.score([("p1", ["a b", "c", "g h"]), ("p2", ["d e f"])])  # p1 grew a step; p2 cached
    assert prm.stats.take("p1") == PRMCharge(tokens=5, steps=3)
    assert prm.stats.take("p2") == PRMCharge(tokens=3, steps=1)
    assert prm.stats.take("p1") == PRMCharge()  # taken


ROWS = {r["problem"]: r for r in generate(1)}


def solver(request, i):
    row = ROWS[problem_of(request.prompt)]
    if request.stop:  # a search step: two steps, then the answer
        depth = request.prompt.count("zq")
        if depth < 2:
            return f"zq {depth} x\n"
    return f"so the answer is \\boxed{{{row['answer']}}}"


@pytest.mark.parametrize("approach", ["best_of_n", "beam_search"])
def test_records_and_run_json_carry_exact_flops_on_the_scripted_engine(
    tmp_path, monkeypatch, approach
):
    engine = ScriptedEngine(solver)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: engine)
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        n=4,
        model=ModelConfig(step_delimiter="\n"),
        approach=ApproachConfig(  # barrier: requests read from engine.calls
            name=approach, beam_width=2, num_iterations=4, scheduler="barrier"
        ),
        temperature=TemperatureConfig(values=[0.4, 1.2]),
        dataset=DatasetConfig(per_level=1),
    )
    execute(cfg)
    # What each problem's requests cost, from the engine's own record of every call: every
    # sample computes its whole prompt (the scripted engine has no cache), one token a word.
    expected: dict[str, list[int]] = {}
    for call in engine.calls:
        for r in call:
            spent = expected.setdefault(r.account, [0, 0])
            for i in range(r.n):
                out = solver(r, i)
                spent[0] += len(r.prompt.split())
                spent[1] += len(out.split())
    records = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").open()]
    assert len(records) == 5 and set(expected) == {r["uid"] for r in records}
    for record in records:
        prompt_tokens, generated = expected[record["uid"]]
        c = record["compute"]
        assert (c["prompt_tokens"], c["generated_tokens"]) == (prompt_tokens, generated)
        assert c["generator_flops"] == 2 * (
            SMOL_BODY * (prompt_tokens + generated) + SMOL_EMBEDDING * generated
        )
        assert c["prm_flops"] == 0.0 and c["prm_tokens"] == 0  # the equation checker: no model
        assert c["prm_steps_scored"] > 0 and c["flops"] == c["generator_flops"]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["totals"]["flops"] == pytest.approx(sum(r["compute"]["flops"] for r in records))
    assert info["totals"]["generated_tokens"] == sum(g for _, g in expected.values())
    assert info["compute"]["generator"]["body_parameters"] == SMOL_BODY
    assert info["compute"]["generator"]["vocab_parameters"] == SMOL_EMBEDDING
    assert info["compute"]["prm"] == "model-free (0 FLOPs)"


@pytest.mark.slow
def test_the_real_engine_charges_cached_prompt_tokens_nothing(real_engine):
    from vllm import SamplingParams, TokensPrompt

    # a prompt no earlier test has put in the prefix cache, several KV blocks long
    prompt = f"{uuid.uuid4()} " + " ".join(f"{i} plus {i}" for i in range(60))
    length = len(real_engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ask = dict(prompt=prompt, temperature=0.8, max_tokens=4, seed=3)
    first = real_engine.generate([GenerationRequest(**ask, account="first")])[0]
    second = real_engine.generate([GenerationRequest(**ask, account="second")])[0]
    a, b = real_engine.stats.take("first"), real_engine.stats.take("second")
    assert a.prompt_tokens == length  # nothing cached yet: the whole prompt computed
    assert 0 < b.prompt_tokens < length / 2  # the cached blocks are free; the rest is not
    assert (a.generated_tokens, b.generated_tokens) == (first[0].num_tokens, second[0].num_tokens)
    assert first[0].text == second[0].text  # same seed, same sample, cached or not

    # n samples are sent as n requests seeded as vLLM seeds an n-sample request: the same
    # samples, and each sample's own cache hits counted (the first computes the whole prompt)
    fresh = f"{uuid.uuid4()} " + prompt
    ids = real_engine.tokenizer(fresh, add_special_tokens=False)["input_ids"]
    ours = real_engine.generate([GenerationRequest(**{**ask, "prompt": fresh}, n=3, account="n")])
    theirs = real_engine.llm.generate(
        [TokensPrompt(prompt_token_ids=ids)],
        SamplingParams(n=3, temperature=0.8, max_tokens=4, seed=3),
        use_tqdm=False,
    )[0]
    assert [g.text for g in ours[0]] == [o.text for o in theirs.outputs]
    assert real_engine.stats.take("n").prompt_tokens >= len(ids)
