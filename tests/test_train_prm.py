"""Training a PRM: TRL-format tokenization, labels, the objective, resumable runs, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hotncold.config import ConfigError, ModelConfig
from hotncold.prm.registry import prm_config
from hotncold.train_prm.config import TrainConfig, TrainDataConfig, TrainPRMConfig, validate
from hotncold.train_prm.data import label_steps, split
from hotncold.train_prm.evaluate import first_error, score
from hotncold.train_prm.tokenize import IGNORE, tokenize_stepwise


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from hotncold.engine.embedded import prepare

    return AutoTokenizer.from_pretrained(prepare())


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, tokenizer) -> Path:
    """A random-weight Llama with the embedded model's tokenizer (head_dim 64, as vLLM's CPU
    attention needs, so the trained PRM can also be served by vLLM)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_llama")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_tokenization_puts_labels_on_the_last_separator_token(tokenizer):
    out = tokenize_stepwise(
        tokenizer, "What is 2+3?", ["2 + 3 = 5", "The answer is 5."], [True, False], "\n"
    )
    ids, labels, ends = out["input_ids"], out["labels"], out["step_ends"]
    assert ids[0] == tokenizer.bos_token_id
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert [ids[e] for e in ends] == [newline[-1]] * 2
    assert [labels[e] for e in ends] == [1, 0]
    assert sum(label != IGNORE for label in labels) == 2
    # the text between the ends decodes back to each step plus its separator
    assert tokenizer.decode(ids[ends[0] + 1 : ends[1] + 1]) == "The answer is 5.\n"


def test_truncation_drops_the_cut_steps(tokenizer):
    full = tokenize_stepwise(tokenizer, "p", ["1 + 1 = 2"] * 5, [True] * 5, "\n")
    cut = tokenize_stepwise(
        tokenizer, "p", ["1 + 1 = 2"] * 5, [True] * 5, "\n", max_length=full["step_ends"][2] + 1
    )
    assert cut["step_ends"] == full["step_ends"][:3]
    assert sum(label != IGNORE for label in cut["labels"]) == 3


@pytest.mark.parametrize(
    ("steps", "final_ok", "expected"),
    [
        (["12 + 7 = 19", "The answer is 19."], True, [True, True]),
        (["12 + 7 = 19", "The answer is 19."], False, [True, False]),
        (["12 + 7 = 20", "20 - 1 = 19", "The answer is 19."], True, [False, False, False]),
        (["first", "12 + 7 = 20", "so 19"], False, [True, False, False]),
    ],
)
def test_prefix_correctness_labels(steps, final_ok, expected):
    assert label_steps(steps, final_ok) == expected


def test_processbench_scores_by_hand():
    examples = [
        {"labels": [True, True, False]},  # error at 2
        {"labels": [True, True]},  # correct
        {"labels": [False, False]},  # error at 0
    ]
    probs = [[0.9, 0.8, 0.1], [0.9, 0.2], [0.7, 0.1]]  # right, wrong (flags step 1), wrong (at 1)
    s = score(examples, probs)
    assert s["processbench"]["accuracy_error"] == 0.5
    assert s["processbench"]["accuracy_correct"] == 0.0
    assert s["processbench"]["f1"] == 0.0
    assert s["step_accuracy"] == pytest.approx(5 / 7)
    assert first_error([True, False, True]) == 1 and first_error([True]) == -1


def test_split_keeps_problems_apart():
    examples = [{"uid": f"u{i // 3}", "labels": [True]} for i in range(30)]
    train, held = split(examples, TrainDataConfig(eval_fraction=0.2), seed=0)
    assert len(train) + len(held) == 30 and held
    assert not {e["uid"] for e in train} & {e["uid"] for e in held}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": "hub"}, r"needs train\.data\.path"),
        ({"eval_fraction": 1.5}, "eval_fraction"),
        ({"levels": [7]}, "levels"),
    ],
)
def test_validation(change, message):
    cfg = TrainPRMConfig(train=TrainConfig(data=TrainDataConfig(**change)))
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_a_torn_data_file_and_a_missing_base_model_fail_in_one_line(tmp_path, monkeypatch):
    import hotncold.train_prm.trainer
    from hotncold.experiment import lock
    from hotncold.train_prm import run as train_run

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(train_run, "train", no_training)
    monkeypatch.setattr(hotncold.train_prm.trainer, "load_base", no_training)
    data = tmp_path / "steps.jsonl"
    data.write_text('{"prompt": "1+1?", "completions": ["1+1=2"], "labels": [true]}\n{"pro')

    def config(**train) -> TrainPRMConfig:
        source = TrainDataConfig(source="file", path=str(data))
        return TrainPRMConfig(train=TrainConfig(data=source, **train), out_dir=str(tmp_path / "r"))

    with pytest.raises(ConfigError, match=r"train\.base_model='/no/such/base': no such folder"):
        train_run.execute(config(base_model="/no/such/base"))
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match=f"train.data.path='{data}' line 2 is cut off"):
        train_run.execute(config())
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "failed"
    # a training run's directory has one writer too
    with lock.locked(tmp_path / "r", "PRM training"):
        with pytest.raises(lock.DirectoryBusy, match="PRM training since"):
            train_run.execute(config())


def test_loss_goes_down_on_a_fixed_tiny_batch(tiny_base, tokenizer):
    import torch
    from transformers import DataCollatorForTokenClassification

    from hotncold.train_prm.trainer import load_base

    torch.manual_seed(0)
    model, tok = load_base(str(tiny_base))
    rows = [
        tokenize_stepwise(
            tok, "What is 2+3?", ["2 + 3 = 5", "The answer is 5."], [True, True], "\n"
        ),
        tokenize_stepwise(
            tok, "What is 2+3?", ["2 + 3 = 6", "The answer is 6."], [False, False], "\n"
        ),
    ]
    batch = DataCollatorForTokenClassification(tok)(
        [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_lora_trains_the_adapters_and_the_head_and_saves_a_plain_checkpoint(tiny_base, tmp_path):
    import torch
    from transformers import AutoModelForTokenClassification

    from hotncold.train_prm.trainer import load_base, train

    examples = [
        {"prompt": "What is 2+3?", "completions": ["2 + 3 = 5", "So 5."], "labels": [True, True]},
        {"prompt": "What is 2+3?", "completions": ["2 + 3 = 6", "So 6."], "labels": [False, False]},
    ]
    cfg = TrainConfig(
        base_model=str(tiny_base),
        lora=True,
        max_steps=3,
        batch_size=2,
        learning_rate=1e-2,
        save_steps=10_000,
        logging_steps=1,
    )
    result = train(examples, cfg, tmp_path, seed=0)
    assert result["global_step"] == 3
    saved = AutoModelForTokenClassification.from_pretrained(tmp_path / "model")
    assert not any("lora" in name for name, _ in saved.named_parameters())  # merged
    base, _ = load_base(str(tiny_base))
    before = dict(base.model.named_parameters())
    after = dict(saved.model.named_parameters())
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("proj" in k for k in changed)  # the merged adapters moved the linear layers
    assert not any("embed" in k for k in changed)  # and nothing else of the base


def learnable_examples(count: int, seed: int) -> list[dict]:
    """Stepwise examples whose labels a model can learn: a step is correct exactly when it
    says so ("checked: right" or "checked: wrong"), in random order and number."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(count):
        labels = [rng.random() < 0.5 for _ in range(rng.randint(1, 4))]
        steps = [
            f"step {k + 1} checked: {'right' if ok else 'wrong'}" for k, ok in enumerate(labels)
        ]
        rows.append(
            {"prompt": f"Problem {i}: check each step.", "completions": steps, "labels": labels}
        )
    return rows


@pytest.mark.slow
def test_training_learns_what_the_labels_say(tiny_base, tmp_path):
    """A whole run on a file of learnable examples: the trained PRM must beat the best
    constant guess (the majority label) on the held-out steps by a wide margin. A trainer that
    does not learn (no gradient, labels on the wrong tokens, a lost head) scores about the
    majority share or below."""
    from hotncold.experiment.rundir import append_jsonl, read_jsonl
    from hotncold.train_prm import run as train_run

    data = tmp_path / "steps.jsonl"
    append_jsonl(data, learnable_examples(160, seed=0))
    cfg = TrainPRMConfig(
        train=TrainConfig(
            base_model=str(tiny_base),
            epochs=1,
            batch_size=8,
            learning_rate=3e-3,
            save_steps=10_000,
            logging_steps=10,
            data=TrainDataConfig(source="file", path=str(data), eval_fraction=0.25),
        ),
        out_dir=str(tmp_path / "run"),
    )
    metrics = train_run.execute(cfg)
    held = read_jsonl(tmp_path / "run" / "data" / "eval.jsonl")
    labels = [ok for e in held for ok in e["labels"]]
    majority = max(sum(labels), len(labels) - sum(labels)) / len(labels)
    assert metrics["steps"] == len(labels) >= 60
    assert majority < 0.6  # the held-out steps are about half right, half wrong
    assert metrics["step_accuracy"] >= majority + 0.3, (metrics, majority)


@pytest.mark.slow
def test_training_run_is_complete_and_resumes(real_engine, tiny_base, tmp_path, monkeypatch):
    from conftest import tiny_model_config

    from hotncold.train_prm import run as train_run

    cfg = TrainPRMConfig(
        train=TrainConfig(
            base_model=str(tiny_base),
            max_steps=4,
            save_steps=2,
            logging_steps=1,
            batch_size=2,
            learning_rate=1e-3,
            max_length=256,
            data=TrainDataConfig(
                per_level=2,
                levels=[1, 2],
                samples_per_problem=2,
                temperatures=[0.4, 1.0],
                eval_fraction=0.25,
            ),
        ),
        model=tiny_model_config(ModelConfig),
        out_dir=str(tmp_path / "run"),
    )
    # interrupt after the first checkpoint (step 2) is written
    import transformers

    original = transformers.Trainer.training_step
    state = {"steps": 0}

    def dies_at_step_3(self, *args, **kwargs):
        state["steps"] += 1
        if state["steps"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", dies_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train_run.execute(cfg)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "checkpoint-2").is_dir()
    stopped = json.loads((run / "run.json").read_text())
    assert (stopped["status"], stopped["error"]) == ("interrupted", "KeyboardInterrupt: ")
    examples = (run / "data" / "train.jsonl").read_text()

    monkeypatch.setattr(transformers.Trainer, "training_step", original)
    calls = real_engine.stats.calls
    metrics = train_run.execute(cfg)
    assert real_engine.stats.calls == calls  # the sampled examples were reused
    assert (run / "data" / "train.jsonl").read_text() == examples
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished"
    assert info["training"]["resumed_from"].endswith("checkpoint-2")
    assert info["training"]["global_step"] == 4
    for name in ("config.json", "model.safetensors", "tokenizer.json", "hotncold_prm.json"):
        assert (run / "model" / name).exists()
    assert json.loads((run / "model" / "hotncold_prm.json").read_text())["step_separator"] == "\n"
    # eval.json is the saved model's verdict on every held-out step: recomputed here, one
    # example at a time with transformers (no padding), it is the same to the step
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    saved = AutoModelForTokenClassification.from_pretrained(run / "model", dtype=torch.float32)
    saved_tokenizer = AutoTokenizer.from_pretrained(run / "model")
    held = [json.loads(x) for x in (run / "data" / "eval.jsonl").read_text().splitlines()]
    right = total = 0
    for e in held:
        enc = tokenize_stepwise(saved_tokenizer, e["prompt"], e["completions"], None, "\n", 256)
        with torch.no_grad():
            logits = saved(torch.tensor([enc["input_ids"]])).logits[0, enc["step_ends"]]
        for p_right, label in zip(logits.softmax(-1)[:, 1].tolist(), e["labels"]):
            right += (p_right >= 0.5) == label
            total += 1
    assert metrics["steps"] == total > 0
    assert metrics["step_accuracy"] == pytest.approx(right / total)
    assert set(metrics["processbench"]) >= {"accuracy_error", "accuracy_correct", "f1"}
    history = json.loads((run / "train_history.json").read_text())
    assert [h["step"] for h in history if "loss" in h][-1] == 4
    search_with_the_trained_prm(run / "model", tmp_path / "search")


def search_with_the_trained_prm(checkpoint: Path, out: Path) -> None:
    """The checkpoint loads through `prm=trl` (vLLM's pooling runner) and guides a real beam
    search; its step scores are the trained model's own, read as it was trained."""
    import torch
    from conftest import tiny_model_config
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from hotncold.config import ApproachConfig, Config, DatasetConfig
    from hotncold.engine.vllm_engine import close_engine
    from hotncold.experiment.run import execute
    from hotncold.prm.registry import build_prm

    model = tiny_model_config(ModelConfig)
    model.max_tokens = 32
    cfg = Config(
        out_dir=str(out),
        n=4,
        model=model,
        approach=ApproachConfig(name="beam_search", beam_width=2, num_iterations=3),
        dataset=DatasetConfig(per_level=1, levels=[1, 2]),
        prm=prm_config("trl", model_path=str(checkpoint), max_model_len=1024),
    )
    execute(cfg)
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["totals"]["prm_tokens"] > 0
    records = [json.loads(x) for x in (out / "completions.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(len(r["completions"]) == 4 for r in records)

    reference = AutoModelForTokenClassification.from_pretrained(checkpoint, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    checked = 0
    for record in records:
        for completion in record["completions"]:
            steps, scores = completion["steps"], completion["step_scores"]
            assert len(scores) == len(steps) and all(0 <= v <= 1 for v in scores)
            if not steps:
                continue
            enc = tokenize_stepwise(tokenizer, record["problem"]["problem"], steps, None, "\n")
            with torch.no_grad():
                logits = reference(torch.tensor([enc["input_ids"]])).logits[0, enc["step_ends"]]
            assert scores == pytest.approx(logits.softmax(-1)[:, 1].tolist(), abs=1e-3)
            checked += 1
    assert checked > 0
    prm = build_prm(cfg.prm)  # the run's cached pooling engine: close it for the next tests
    close_engine(prm.engine)


TRAIN_OPTIONS = sorted(
    p.stem for p in (Path(__file__).parent.parent / "hotncold" / "conf" / "train").glob("*.yaml")
)


@pytest.mark.parametrize("option", TRAIN_OPTIONS)
def test_train_options_compose(option):
    from conftest import ROOT
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import hotncold.config.hydra  # noqa: F401
    from hotncold.train_prm.run import to_config

    with initialize_config_dir(config_dir=str(ROOT / "hotncold" / "conf"), version_base="1.3"):
        composed = compose(
            "train_prm",
            overrides=[f"train={option}", "out_dir=/tmp/x", "overrides=[]"],
            return_hydra_config=True,
        )
    cfg = to_config(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
    assert cfg.train.name == option
    assert composed.hydra.run.dir == f"outputs/train_prm/{composed.run_name}"
    if option == "local":
        with pytest.raises(ConfigError, match=r"needs train\.data\.path"):
            validate(cfg)
    else:
        validate(cfg)


def test_train_typo_fails_at_composition():
    from conftest import ROOT
    from hydra import compose, initialize_config_dir

    with (
        initialize_config_dir(config_dir=str(ROOT / "hotncold" / "conf"), version_base="1.3"),
        pytest.raises(Exception, match="learning_rat"),
    ):
        compose("train_prm", overrides=["train.learning_rat=1"])
