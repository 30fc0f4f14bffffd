"""Shared fixtures. The real engine is started once per test session (it takes ~30 s)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def real_engine():
    """The embedded SmolLM2 model on vLLM, shared by every slow test of the session."""
    from hotncold.config import ModelConfig
    from hotncold.engine import close_engines, get_engine

    engine = get_engine(tiny_model_config(ModelConfig))
    yield engine
    close_engines()


def tiny_model_config(cls):
    """The embedded model with the settings the conf/model/smollm2_135m.yaml option uses."""
    return cls(path="embedded:smollm2_135m", max_tokens=96, max_model_len=1024, step_delimiter="\n")
