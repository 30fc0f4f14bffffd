"""Hub repositories in the local Hugging Face cache: what a run needs, whether it is there.

Compute nodes are often offline: `python -m hotncold.prefetch` downloads on the login node what
a run or a sweep needs (`snapshot_download`, into the standard cache), and jobs then run with
HF_HUB_OFFLINE=1. A job whose models or datasets are not in the cache must fail at once, with
one line naming what to prefetch, not after minutes of loading or deep inside vLLM. Everything
here reads the cache through huggingface_hub's own lookups (`snapshot_download(...,
local_files_only=True)`), so the cache layout, `HF_HOME` and `HF_HUB_CACHE` are its business.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass
from pathlib import Path

from hotncold.config import ConfigError
from hotncold.engine import embedded, model_facts

TRUE_VALUES = ("1", "ON", "YES", "TRUE")
"""What huggingface_hub reads as set."""

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
"""Weight formats in the order vLLM prefers them: the first one a repository holds is loaded."""

OTHER_FORMATS = (
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "*.onnx_data",
    "*.gguf",
    "*.tflite",
    "*.ot",
    "original/*",
    "onnx/*",
    "openvino/*",
)
"""Files of a model repository no engine here loads (other frameworks' weights, Meta's
original checkpoints): never downloaded."""


@dataclass(frozen=True)
class Need:
    """One repository a run needs from the hub."""

    repo_id: str
    repo_type: str
    """`model` or `dataset`."""
    why: str
    """The setting that names it (`model.path`, `prm.model_path`, `dataset.path`)."""


def is_hub_id(path: str | None) -> bool:
    """Whether `path` names a hub repository (owner/name), not a local folder or file."""
    if not path or path.startswith(("/", ".", "~", "embedded:")):
        return False
    return path.count("/") == 1 and not Path(path).exists()


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE, which implies it) is set."""
    from huggingface_hub import constants

    env = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(value in TRUE_VALUES for value in env)


def snapshot(repo_id: str, repo_type: str = "model") -> Path | None:
    """The cached snapshot folder of the repository's main revision, or None (no network).

    A model's snapshot is found from its config.json (prefetch downloads a model without the
    weight formats it does not load, which huggingface_hub's own lookup would call
    incomplete); a dataset is downloaded whole, so its lookup is huggingface_hub's."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError

    if repo_type == "model":
        try:
            found = try_to_load_from_cache(repo_id, "config.json")
        except ValueError:  # not a valid repository id
            return None
        return Path(found).parent if isinstance(found, str) else None
    try:
        return Path(snapshot_download(repo_id, repo_type=repo_type, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None


def missing(need: Need) -> list[str]:
    """What of `need` the cache lacks for loading: empty when a run can use it offline."""
    folder = snapshot(need.repo_id, need.repo_type)
    if folder is None:
        return ["the repository"]
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    if need.repo_type == "dataset":
        data = [f for f in files if not f.startswith(".") and f != "README.md"]
        return [] if data else ["its data files"]
    lacking = []
    if "config.json" not in files:
        lacking.append("config.json")
    if not any(f in files for f in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        lacking.append("its tokenizer")
    lacking += _missing_weights(folder, files)
    return lacking


def _missing_weights(folder: Path, files: list[str]) -> list[str]:
    for pattern in WEIGHT_PATTERNS:
        present = [f for f in files if fnmatch.fnmatch(f, pattern)]
        index = next((f for f in files if f.endswith(pattern[1:] + ".index.json")), None)
        if index is not None:  # sharded: every shard the index lists must be there
            shards = set(json.loads((folder / index).read_text()).get("weight_map", {}).values())
            absent = sorted(shards - set(present))
            return [f"weight shards {', '.join(absent)}"] if absent else []
        if present:
            return []
    return ["its weights (*.safetensors or *.bin)"]


def check_cached(needs: list[Need], prefetch: str) -> None:
    """Offline (HF_HUB_OFFLINE=1): ConfigError naming what to prefetch unless every need is in
    the cache. Online, nothing to check: whatever is missing downloads when it loads."""
    if not offline():
        return
    absent = [(need, what) for need in needs if (what := missing(need))]
    if absent:
        listed = "; ".join(f"{n.why}={n.repo_id} ({', '.join(w)})" for n, w in absent)
        raise ConfigError(
            f"HF_HUB_OFFLINE=1 and the Hugging Face cache lacks {listed}; on a node with "
            f"internet run `{prefetch}` (same cache, HF_HOME), then submit again"
        )


def model_config(path: str, fetch: bool = True) -> dict | None:
    """config.json of a model: a local folder, the embedded model's converted folder (only
    if already converted), the cache, or, online and when `fetch`, downloaded alone (a few
    kB, which loading would download anyway). None when none of these has it."""
    if path.startswith("embedded:"):
        folder = embedded.cache_root() / "models" / embedded.FOLDER_NAME
        return model_facts.read_config(folder) if embedded.is_prepared(folder) else None
    found = model_facts.read_config(path)
    if found is not None or not fetch or offline() or not is_hub_id(path):
        return found
    return _download_config(path)


def _download_config(repo_id: str) -> dict | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        return json.loads(Path(hf_hub_download(repo_id, "config.json")).read_text())
    except GatedRepoError:
        raise ConfigError(
            f"{repo_id} is gated: accept its licence at https://huggingface.co/{repo_id} and "
            "log in (`hf auth login` or HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"{repo_id} is not a model on the hub (or is private); check the id or log in"
        ) from None
    except Exception:  # no network, a proxy, a timeout: loading will say it again, with detail
        return None
