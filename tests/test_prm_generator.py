"""PRMs that read the generator itself (self_certainty, judge without a model path): they run on
the generator's engine, load nothing, and work in a real run end to end."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_model_config

from hotncold.config import Config, DatasetConfig, ModelConfig, PromptConfig
from hotncold.engine import vllm_engine as engine_module
from hotncold.experiment.run import execute
from hotncold.prm.registry import build_prm, prm_config

pytestmark = pytest.mark.slow

PROBLEM = "Tom has 12 apples and buys 7 more. How many apples does he have now?"
STEPS = ["Tom starts with 12 apples.", "He buys 7 more, so 12 + 7 = 19.", "The answer is 19."]


def test_self_certainty_is_the_generators_own_token_probability(real_engine):
    from transformers import AutoModelForCausalLM

    model = tiny_model_config(ModelConfig)
    prm = build_prm(
        prm_config("self_certainty"), engine=real_engine, model=model, prompt=PromptConfig()
    )
    assert prm.engine is real_engine
    real_engine.reset_prefix_cache()
    scores = prm.score([(PROBLEM, STEPS)])[0]

    ids, bounds = prm.encode(PROBLEM, STEPS)
    hf = AutoModelForCausalLM.from_pretrained(real_engine.path, dtype=torch.float32).eval()
    with torch.no_grad():
        logprobs = hf(torch.tensor([ids])).logits[0].log_softmax(-1)
    token_lp = [logprobs[p - 1, ids[p]].item() for p in range(len(ids))]
    expected = [
        torch.tensor(token_lp[bounds[k] : bounds[k + 1]]).mean().exp().item()
        for k in range(len(STEPS))
    ]
    assert scores == pytest.approx(expected, abs=1e-3)
    assert all(0.0 < s <= 1.0 for s in scores)
    # the steps' tokens are those the prompt is followed by
    assert prm.tokenizer.decode(ids[bounds[1] : bounds[2]]) == "\n" + STEPS[1]

    # grown a step at a time: same scores, and only the new step's tokens computed
    prm.reset()
    real_engine.reset_prefix_cache()
    tokens = []
    for depth in range(1, len(STEPS) + 1):
        before = prm.stats.tokens
        grown = prm.score([(PROBLEM, STEPS[:depth])])[0]
        tokens.append(prm.stats.tokens - before)
    assert grown == pytest.approx(scores, abs=1e-4)
    block = real_engine.llm.llm_engine.vllm_config.cache_config.block_size
    for depth in (1, 2):
        assert tokens[depth] <= (bounds[depth + 1] - bounds[depth]) + block


@pytest.mark.parametrize(("name", "agg"), [("self_certainty", "mean"), ("judge", "min")])
def test_a_run_with_a_prm_on_the_generator(real_engine, tmp_path, name, agg):
    engines = len(engine_module._ENGINES)
    cfg = Config(
        out_dir=str(tmp_path / "run"),
        n=2,
        model=tiny_model_config(ModelConfig),
        dataset=DatasetConfig(per_level=1, levels=[1, 2]),
        prm=prm_config(name, agg_strategy=agg),
    )
    execute(cfg)
    assert len(engine_module._ENGINES) == engines  # no second model was loaded
    recs = [
        json.loads(x) for x in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()
    ]
    scored = [c for rec in recs for c in rec["completions"]]
    assert len(scored) == 4
    for c in scored:
        assert len(c["step_scores"]) == len(c["steps"])
        assert all(0.0 <= s <= 1.0 for s in c["step_scores"])
    assert len({s for c in scored for s in c["step_scores"]}) > 2
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    totals = info["totals"]
    assert info["status"] == "finished"
    assert totals["prm_tokens"] > 0 and totals["prm_steps_scored"] > 0
    assert totals["engine_calls"] == 1  # scoring is not counted as generation
    assert totals["generated_tokens"] == sum(c["num_tokens"] for c in scored)
    assert (tmp_path / "run" / "metrics.json").is_file()
