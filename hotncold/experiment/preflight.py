"""What a run checks before anything loads, beyond its config's rules (`validate`).

- `check_machine`: the installed vLLM is a supported release, and, offline (HF_HUB_OFFLINE=1),
  every hub repository the run needs is in the local cache (else one line naming the
  `python -m hotncold.prefetch` command that gets them).
- `plan`: the engines' settings fitted to the models' configs and to this machine's GPU
  (`prm.registry.plan_engines`): context lengths clamped or refused, memory shares sized.

`hub_needs` is also what `python -m hotncold.prefetch` downloads, so the two never disagree.
"""

from __future__ import annotations

import logging
import shlex

from hotncold.config import Config, ModelConfig, PRMConfig
from hotncold.engine import hf_cache, machine, vllm_engine
from hotncold.engine.hf_cache import Need
from hotncold.prm import registry
from hotncold.prm.registry import EnginePlan

log = logging.getLogger(__name__)


def hub_needs(cfg: Config) -> list[Need]:
    """The hub repositories a run loads: its generator, its PRM (when loaded in the run's own
    process) and its dataset, each once."""
    found: list[Need] = []
    if hf_cache.is_hub_id(cfg.model.path):
        found.append(Need(cfg.model.path, "model", "model.path"))
    found += registry.hub_needs(cfg.prm, cfg.model)
    if cfg.dataset.source == "hub" and cfg.dataset.path:
        found.append(Need(cfg.dataset.path, "dataset", "dataset.path"))
    unique: dict[tuple[str, str], Need] = {}
    for need in found:
        unique.setdefault((need.repo_id, need.repo_type), need)
    return list(unique.values())


def prefetch_command(overrides: list[str]) -> str:
    """The command that prefetches what a run with these overrides needs."""
    return " ".join(["python -m hotncold.prefetch", *map(shlex.quote, overrides)])


def check_machine(cfg: Config) -> None:
    """ConfigError (one line naming the fix) for a vLLM this release does not support, or for
    hub files an offline run lacks."""
    machine.check_vllm()
    hf_cache.check_cached(hub_needs(cfg), prefetch_command(cfg.overrides))


def card_bytes() -> int | None:
    """Memory of the GPU the engines will use; None on CPUs, 0 when it cannot be read."""
    if vllm_engine.on_cpu():
        return None
    gpus = machine.gpus()
    if not gpus:
        log.warning("no GPU memory readable (nvidia-smi): engine shares cannot be sized")
        return 0
    return gpus[0].memory_bytes


def plan(model: ModelConfig, prm: PRMConfig) -> EnginePlan:
    """The run's engine settings on this machine (see `prm.registry.plan_engines`)."""
    return registry.plan_engines(model, prm, card_bytes())
