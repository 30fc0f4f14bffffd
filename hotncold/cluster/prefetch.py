"""Everything a run or a whole sweep needs from the hub, downloaded on a node with internet.

`python -m hotncold.prefetch <overrides>` takes the same arguments as `python -m hotncold -m`:
a preset (`experiment=hot_vs_cold`), swept values (`prm=rlhflow_8b,qwen_math_prm_7b`) or a
single run's overrides. It expands the sweep as its sweeper does (`cluster.sweep_grids`),
composes each distinct job (only the settings that choose models and datasets matter, so 7,800
jobs are a handful of compositions), collects the hub repositories they load
(`experiment.preflight.hub_needs`, the very list an offline run checks), and downloads each
into the standard Hugging Face cache: models without the weight formats vLLM will not load,
datasets whole (a run reads them from the snapshot). Then it checks each distinct generator +
PRM pair against the card the cluster profile declares (`cluster.gpu_memory_gib`), so a sweep
that cannot fit is found before it is submitted. Jobs then run with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

import hotncold.config.hydra  # noqa: F401  (the schema and resolvers the jobs' configs need)
from hotncold.cluster import hydra_private
from hotncold.cluster.sweep import CONF_DIR
from hotncold.cluster.sweep_grids import sweeper_jobs
from hotncold.config import Config, ConfigError
from hotncold.engine import hf_cache
from hotncold.engine.hf_cache import Need
from hotncold.engine.memory import GiB
from hotncold.experiment.preflight import hub_needs
from hotncold.experiment.run import to_config
from hotncold.experiment.validate import validate
from hotncold.prm.registry import model_path, plan_engines

log = logging.getLogger(__name__)

CHOOSERS = ("model", "prm", "experiment", "cluster")
"""Overrides that can change which repositories a job loads or the card it runs on (these
groups and their fields, and the dataset's choice and location); the rest (seeds,
temperatures, shards, n, ...) never do, so jobs differing only there count as one."""


def _chooses(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    root = key.split(".", 1)[0]
    return root in CHOOSERS or key in ("dataset", "dataset.source", "dataset.path")


def job_configs(arguments: Sequence[str]) -> list[Config]:
    """The distinct configs (as far as downloads go) of the sweep `arguments` describe: the
    preset's `hydra.sweeper` grids and the command line's values, expanded to jobs."""
    with hydra_private.app("hotncold", str(CONF_DIR)) as hydra:
        base = hydra_private.compose_multirun(hydra, "config", list(arguments))
        jobs = sweeper_jobs(hydra.config_loader, base.hydra.sweeper, list(arguments))
        distinct = list(dict.fromkeys(tuple(o for o in job if _chooses(o)) for job in jobs))
        configs = []
        for job in distinct:
            composed = hydra_private.compose_multirun(hydra, "config", list(job))
            plain = OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"])
            plain.overrides = list(job)
            plain.out_dir = plain.run_name = ""  # resolvers of Hydra's runtime: not needed
            cfg = to_config(plain)
            validate(cfg)
            configs.append(cfg)
    return configs


def needs_of(configs: Sequence[Config]) -> list[Need]:
    """Every repository the configs load, each once, in first-use order."""
    unique: dict[tuple[str, str], Need] = {}
    for cfg in configs:
        for need in hub_needs(cfg):
            unique.setdefault((need.repo_id, need.repo_type), need)
    return list(unique.values())


def model_patterns(files: Sequence[str]) -> list[str]:
    """ignore_patterns for a model repository: the weight formats after the first one it holds
    (vLLM loads the first of safetensors, bin, pt) and files no engine here loads."""
    ignore = list(hf_cache.OTHER_FORMATS)
    present = [p for p in hf_cache.WEIGHT_PATTERNS if any(Path(f).match(p) for f in files)]
    if present:
        ignore += [p for p in hf_cache.WEIGHT_PATTERNS if p != present[0]]
    return ignore


@dataclass
class Fetched:
    need: Need
    folder: str | None
    """The snapshot folder, or None when the download failed."""
    error: str | None = None


Downloader = Callable[[Need], str]


def download(need: Need) -> str:
    """Download one repository into the Hugging Face cache; returns its snapshot folder."""
    from huggingface_hub import HfApi, snapshot_download

    if need.repo_type == "dataset":
        return snapshot_download(need.repo_id, repo_type="dataset")
    files = HfApi().list_repo_files(need.repo_id)
    return snapshot_download(need.repo_id, ignore_patterns=model_patterns(files))


def fetch(needs: Sequence[Need], downloader: Downloader = download) -> list[Fetched]:
    out = []
    for need in needs:
        try:
            out.append(Fetched(need, downloader(need)))
        except Exception as error:  # gated, misspelt, no network: report each, go on
            text = str(error).strip().splitlines()
            out.append(Fetched(need, None, text[0] if text else type(error).__name__))
    return out


def check_fit(configs: Sequence[Config]) -> list[str]:
    """One line per distinct generator + PRM pair: the shares on the declared card, or why it
    cannot fit (its rule's one-line error). Nothing when no card is declared."""
    lines: dict[tuple, str] = {}
    for cfg in configs:
        card = cfg.cluster.gpu_memory_gib
        key = (cfg.model.path, cfg.prm.name, model_path(cfg.prm), card)
        if card is None or key in lines:
            continue
        label = f"{cfg.model.path} + prm={cfg.prm.name} on a {card:g} GiB card"
        try:
            plan = plan_engines(cfg.model, cfg.prm, int(card * GiB), read=_cached_config)
        except ConfigError as error:
            lines[key] = f"does not fit: {label}: {error}"
            continue
        if plan.split is None:
            lines[key] = f"unknown size: {label} (config.json not readable; not checked)"
        else:
            shares = ", ".join(f"{n.role} {s:.3f}" for n, s in zip(plan.needs, plan.split.shares))
            lines[key] = f"fits: {label}: {shares}"
    return list(lines.values())


def _cached_config(path: str) -> dict | None:
    return hf_cache.model_config(path, fetch=False)  # what was just downloaded, or nothing


def main(arguments: Sequence[str], downloader: Downloader = download) -> int:
    """Download what the sweep needs and print one line per repository; 0 when all are there
    and every declared card fits."""
    try:
        configs = job_configs(arguments)
    except ConfigError as error:
        print(f"hotncold.prefetch: error: {error}")
        return 2
    needs = needs_of(configs)
    if hf_cache.offline():
        print("hotncold.prefetch: error: HF_HUB_OFFLINE is set here; run it where the hub answers")
        return 2
    print(f"{len(configs)} distinct job config(s) need {len(needs)} repositories")
    fetched = fetch(needs, downloader)
    for f in fetched:
        status = f"ok      {f.folder}" if f.folder else f"FAILED  {f.error}"
        print(f"{f.need.repo_type:8s}{f.need.repo_id:48s}{status}")
    fits = check_fit(configs)
    for line in fits:
        print(line)
    failed = [f for f in fetched if f.folder is None]
    unfit = [line for line in fits if line.startswith("does not fit")]
    if not failed and not unfit:
        print("done: jobs can run with HF_HUB_OFFLINE=1 (same HF_HOME / HF_HUB_CACHE)")
    return 1 if failed or unfit else 0
