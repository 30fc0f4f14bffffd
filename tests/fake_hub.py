"""A Hugging Face cache on disk, laid out as huggingface_hub lays it out, for offline tests.

`<cache>/<type>s--<owner>--<name>/refs/main` holds the commit, `snapshots/<commit>/` the files
(huggingface_hub stores blobs and links them there; lookups read only the snapshot and the ref).
The `hub_cache` fixture points huggingface_hub (and the datasets cache) at a fresh folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cached_repo(
    cache: Path, repo_id: str, files: dict[str, bytes | str | dict], repo_type: str = "model"
) -> Path:
    """Put `files` (name -> content; dicts are written as JSON) into the cache as the main
    revision of `repo_id`; returns the snapshot folder."""
    owner, name = repo_id.split("/")
    repo = cache / f"{repo_type}s--{owner}--{name}"
    snapshot = repo / "snapshots" / COMMIT
    for rel, content in files.items():
        path = snapshot / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            content = json.dumps(content)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face hub cache (and datasets cache) for this test, offline."""
    import datasets
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    return cache
