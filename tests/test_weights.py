"""Model paths checked before anything loads: folders, GGUF files, hub ids, the embedded model."""

from __future__ import annotations

import json

import pytest

import hotncold.engine.vllm_engine
from hotncold.config import (
    Config,
    ConfigError,
    DatasetConfig,
    EquationCheckerConfig,
    ModelConfig,
)
from hotncold.engine.weights import check_model_path
from hotncold.experiment.run import execute
from hotncold.prm.registry import check_prm_weights, prm_config


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/nonexistent/model", "no such folder"),
        ("./models/mine", "no such folder"),
        ("~/no-such-model-here", "no such folder"),
        ("owner/name/extra", "neither an existing folder nor a valid hub id"),
        ("my model", "neither an existing folder nor a valid hub id"),
        ("embedded:gpt5", "no such embedded model; the packaged one is embedded:smollm2_135m"),
    ],
)
def test_a_path_that_is_no_model_fails_in_one_line(path, message):
    with pytest.raises(ConfigError, match=message) as info:
        check_model_path(path, "model.path")
    text = str(info.value)
    assert text.startswith(f"model.path={path!r}") and "\n" not in text


def test_local_folders_and_files_are_checked_for_a_model(tmp_path):
    with pytest.raises(ConfigError, match=r"is a folder without config\.json"):
        check_model_path(str(tmp_path), "prm.model_path")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a file; give the model's folder"):
        check_model_path(str(tmp_path / "weights.bin"), "prm.model_path")
    (tmp_path / "model.gguf").write_bytes(b"")
    check_model_path(str(tmp_path / "model.gguf"), "model.path")  # vLLM loads GGUF files
    (tmp_path / "config.json").write_text("{}")
    check_model_path(str(tmp_path), "model.path")
    check_model_path("embedded:smollm2_135m", "model.path")  # the packaged model is installed


def test_a_hub_id_is_found_in_the_cache_or_refused_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        ConfigError, match="nor in the local Hugging Face cache, and the hub is off"
    ):
        check_model_path("hotncold-tests/absent", "model.path", str(tmp_path))
    # the layout huggingface_hub downloads into: refs/main names the snapshot holding the files
    repo = tmp_path / "models--hotncold-tests--cached"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    check_model_path("hotncold-tests/cached", "model.path", str(tmp_path))


def test_only_weights_the_prm_loads_itself_are_checked():
    model = ModelConfig()
    missing = "/nonexistent/prm"
    with pytest.raises(ConfigError, match=r"prm\.model_path=./nonexistent/prm.: no such folder"):
        check_prm_weights(prm_config("rlhflow_8b", model_path=missing), model)
    with pytest.raises(ConfigError, match=r"prm=math_shepherd needs prm\.model_path"):
        check_prm_weights(prm_config("math_shepherd", model_path=None), model)
    # served elsewhere, written in Python, or read from the generator: nothing to load here
    check_prm_weights(prm_config("rlhflow_8b", model_path=missing, server_url="http://x"), model)
    check_prm_weights(prm_config("equation_checker"), model)
    check_prm_weights(prm_config("judge", model_path=None), model)


def test_a_bad_model_path_fails_before_anything_loads_or_is_written(tmp_path, monkeypatch):
    def no_engine(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", no_engine)
    for model, prm in (
        (ModelConfig(path="/nonexistent/model"), EquationCheckerConfig()),
        (ModelConfig(), prm_config("trl", model_path="./no-such-checkpoint")),
    ):
        cfg = Config(out_dir=str(tmp_path / "run"), model=model, prm=prm)
        cfg.dataset = DatasetConfig(per_level=1)
        with pytest.raises(ConfigError, match="no such folder"):
            execute(cfg)
        assert not (tmp_path / "run").exists()


def test_the_prm_server_checks_the_weights_it_would_serve_before_loading(monkeypatch):
    from hotncold.config import PRMServerConfig
    from hotncold.prm.http_server import serve

    def no_engine(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", no_engine)
    cfg = PRMServerConfig(prm=prm_config("rlhflow_8b", model_path="/nonexistent/prm"))
    with pytest.raises(ConfigError, match="no such folder"):
        serve(cfg)
    judge = PRMServerConfig(prm=prm_config("judge"), model=ModelConfig(path="bad id"))
    with pytest.raises(ConfigError, match="neither an existing folder nor a valid hub id"):
        serve(judge)
