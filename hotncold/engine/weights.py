"""Where a model's weights are, checked before anything loads: a folder, a GGUF file, a hub id.

vLLM and transformers take any string as a model and find out what it is only when they load
it, after an engine has started, and then fail with a long traceback ("Repo id must be in the
form 'repo_name' or 'namespace/repo_name'" for a mistyped folder). `check_model_path` says in
one line what is wrong with a path, in seconds: a folder that is missing or holds no model, a
string that is neither a folder nor a valid hub id (huggingface_hub's own `validate_repo_id`),
or a hub id that cannot be had: offline and not in the local cache, or (online) not on the hub.
A string that looks like a path (`/`, `./`, `../`, `~`) is always a folder, never a hub id.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hotncold.config import ConfigError
from hotncold.engine import embedded

log = logging.getLogger(__name__)

EMBEDDED = ("smollm2_135m",)
"""The models shipped inside a package (`embedded:<name>`)."""

CONFIG_FILES = ("config.json", "params.json")
"""What makes a folder a model: Hugging Face's config, or Mistral's own format."""

PATH_PREFIXES = ("/", "./", "../", "~")


def check_model_path(path: str, setting: str, download_dir: str | None = None) -> None:
    """Raise ConfigError naming `setting` when `path` is no model this machine can load.

    `download_dir` is the cache vLLM downloads hub models into when it is not Hugging Face's
    own (`engine_kwargs.download_dir`)."""
    if path.startswith("embedded:"):
        _check_embedded(path, setting)
        return
    folder = Path(path).expanduser()
    if folder.exists():
        _check_local(folder, path, setting)
        return
    if path.startswith(PATH_PREFIXES) or path in (".", ".."):
        raise ConfigError(
            f"{setting}={path!r}: no such folder; give a model folder (with config.json) or a "
            "hub id such as Qwen/Qwen2.5-1.5B-Instruct"
        )
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(path)
    except HFValidationError as error:
        reason = str(error).split(":", 1)[0].rstrip(".")
        raise ConfigError(
            f"{setting}={path!r} is neither an existing folder nor a valid hub id ({reason}); "
            "give a model folder or a hub id such as Qwen/Qwen2.5-1.5B-Instruct"
        ) from None
    _check_hub(path, setting, download_dir)


def _check_embedded(path: str, setting: str) -> None:
    name = path.split(":", 1)[1]
    if name not in EMBEDDED:
        raise ConfigError(
            f"{setting}={path!r}: no such embedded model; the packaged one is "
            f"embedded:{EMBEDDED[0]}"
        )
    if embedded.is_prepared():
        return
    try:
        embedded.gguf_path()
    except FileNotFoundError as error:
        raise ConfigError(f"{setting}={path!r}: {error}") from None


def _check_local(folder: Path, path: str, setting: str) -> None:
    if folder.is_file():
        if folder.suffix == ".gguf":  # vLLM loads a GGUF file itself
            return
        raise ConfigError(
            f"{setting}={path!r} is a file; give the model's folder (with config.json), or a "
            ".gguf file"
        )
    if not any((folder / name).is_file() for name in CONFIG_FILES):
        raise ConfigError(
            f"{setting}={path!r} is a folder without config.json, so no model; give the folder "
            "the model was saved to (save_pretrained writes config.json)"
        )


def _check_hub(repo: str, setting: str, download_dir: str | None) -> None:
    from huggingface_hub import constants, try_to_load_from_cache

    for name in CONFIG_FILES:
        if isinstance(try_to_load_from_cache(repo, name, cache_dir=download_dir), str):
            return  # downloaded before: loading reads the cache
    if constants.HF_HUB_OFFLINE:
        raise ConfigError(
            f"{setting}={repo!r} is not a folder here nor in the local Hugging Face cache, and "
            f"the hub is off (HF_HUB_OFFLINE=1); download it where there is network "
            f"(hf download {repo}) or give a model folder"
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo, timeout=10)
    except GatedRepoError:
        raise ConfigError(
            f"{setting}={repo!r} is gated on the hub; accept its terms on its page and log in "
            "(hf auth login)"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"{setting}={repo!r} is not a folder here nor a model on the hub (or a private one: "
            "log in with hf auth login); check the spelling"
        ) from None
    except Exception as error:  # the network: timeouts, proxies, DNS; one line for the user
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(
            f"{setting}={repo!r} is not in the local cache and the hub cannot be asked ({first}); "
            "check the network, or download it first and set HF_HUB_OFFLINE=1"
        ) from None
