"""Run names: a run's directory is named from its resolved config, so reruns find it again.

`run_name` gives the readable axes a reader scans for (approach, temperatures, n, seed, model,
PRM, dataset) and a hash of every other result-determining value (`config_hash` over
`result_config`, which drops `NON_RESULT_KEYS`: where and how a run executes) and of
`RESULTS_VERSION`. Resuming relies on these names staying the same: tests/test_run_names.py
pins some, byte for byte.
`describe_temperature` and `approach_label` are the labels reports and the hub give a run's
temperature schedule and approach, from its stored config.yaml.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hotncold.config import TemperatureConfig
from hotncold.search.temperature import TemperaturePlan

log = logging.getLogger(__name__)

RESULTS_VERSION = 2
"""What a run with a given config computes, as a number the run-name hash covers. Bump it
whenever a change alters what a run with an unchanged config computes, so that an old run
directory is never resumed into new semantics: the run gets a new name instead. 2 (issue 12):
ties broken at random, blank candidates unfinished, temperatures dealt per iteration with
rotating extras (Best-of-N too), `finished_only` for Best-of-N, relative tie tolerance."""

# Fields that say where or how a run executes, not what it computes: two configs differing only
# here produce the same results, so they are left out of the run name's hash and of the resume
# compatibility check.
NON_RESULT_KEYS = (
    "out_dir",
    "run_name",
    "sweep_name",
    "overrides",
    "cluster",
    "batch_size",
    "output",
    "verbose",
    # How big the generator's KV cache is: a smaller one preempts and recomputes, the same text.
    "model.cpu_kv_cache_gib",
    # Where and how the PRM runs; its scores are the same in-process, served, or recomputed.
    "prm.server_url",
    "prm.incremental",
    "prm.batch_size",
    "prm.gpu_memory_utilization",
    "prm.cpu_kv_cache_gib",
    "prm.block_size",
    # Soft Best-of-N's grid adds numbers to metrics.json (recomputed from completions.jsonl at
    # every run's end) and changes no sample, score or other number.
    "metrics.selection_temperatures",
    # How a step search's problems share the engine: the same records either way.
    "approach.scheduler",
    "approach.open_batches",
)

OPTIONAL_KEYS = ("source_prm",)
"""Fields left out of a run's name while null (their default), so that adding them kept the
names of every run that does not set them (`source_prm`: only re-scored runs set it)."""

DEFAULTED_FIELDS: dict[str, Any] = {
    "approach.unanswered": "distinct",
    "approach.answer_stop": False,
}
"""`group.field` settings added after runs existed, left out of a run's name while they hold
the value that gives what every earlier run did, so a config meaning the same keeps its name and
any other value gets a new one (`approach.unanswered`: adaptive_bon's probe counted a sample
without an answer as an answer of its own, `distinct`, before the setting; its default is now
`ignore`, so default adaptive_bon runs were renamed. `approach.answer_stop`: false, its
default, is what every earlier run did, so adding it renamed no run; true enters the hash)."""


def result_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that determines results (what the run name hashes)."""
    out = {k: v for k, v in cfg.items() if k not in NON_RESULT_KEYS and k != "hydra"}
    for key in OPTIONAL_KEYS:
        if out.get(key) is None:
            out.pop(key, None)
    for key in NON_RESULT_KEYS:  # `group.field` entries drop one field of a group
        _drop_field(out, key, lambda value: True)
    for key, default in DEFAULTED_FIELDS.items():
        _drop_field(out, key, lambda value, default=default: value == default)
    return out


def _drop_field(out: dict[str, Any], key: str, when: Callable[[Any], bool]) -> None:
    """Leave the field of a `group.field` key out of its group in `out` where `when(value)`."""
    group, _, name = key.partition(".")
    fields = out.get(group)
    if name and isinstance(fields, dict) and name in fields and when(fields[name]):
        out[group] = {k: v for k, v in fields.items() if k != name}


def config_hash(cfg: dict[str, Any], results_version: int | None = None) -> str:
    """8 hex digits of the result-determining config, and of `results_version` when given (run
    names give `RESULTS_VERSION`; the PRM trainer's names, whose runs it does not concern, do
    not)."""
    key = result_config(cfg)
    if results_version is not None:
        key = {**key, "results_version": results_version}
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def run_name(cfg: dict[str, Any]) -> str:
    """A readable, collision-free name: the axes a reader scans for, then a hash of the rest.

    `best_of_n_T0.8_n8_seed0_smollm2_135m_equation_checker_arithmetic_1a2b3c4d`
    """
    known = {f.name for f in dataclasses.fields(TemperatureConfig)}
    t = TemperatureConfig(**{k: v for k, v in cfg["temperature"].items() if k in known})
    tag = TemperaturePlan.from_config(t).tag()
    approach = approach_label(cfg)
    data = cfg["dataset"]
    dataset = data["name"]
    if data["num_shards"] > 1:
        dataset += f"-shard{data['shard']}of{data['num_shards']}"
    prm = cfg["prm"]["name"]
    if cfg.get("source_prm"):  # a re-scored run: the source run's PRM, then the scoring one
        prm = f"{cfg['source_prm']['name']}-rescored-{prm}"
    parts = [
        approach,
        tag,
        f"n{cfg['n']}",
        f"seed{cfg['seed']}",
        cfg["model"]["name"],
        prm,
        dataset,
        config_hash(cfg, RESULTS_VERSION),
    ]
    return "_".join(str(p).replace("/", "-") for p in parts)


@dataclass
class Temperature:
    """How a run's temperature schedule is named and classified."""

    tag: str
    """`T0.4`, `T0.4-0.8-1.2`, ... as in run names, with any schedule fields the tag adds."""
    kind: str
    """`single` (one temperature), `mix` (several, each sample at one) or `schedule`."""
    value: float
    """The temperature of a `single` schedule; NaN otherwise."""


def describe_temperature(t: dict[str, Any]) -> Temperature:
    """Name a temperature config generically: the plan's own tag, plus any keys this version
    of hotncold does not know (a newer schedule), so different schedules never share a name."""
    known = {f.name for f in dataclasses.fields(TemperatureConfig)}
    values = [float(v) for v in t.get("values") or []]
    k = len(values)
    ratios = t.get("ratios") or ([1.0 / k] * k if k else [])
    base = TemperaturePlan(values=tuple(values), ratios=tuple(float(r) for r in ratios)).tag()
    try:
        cfg = TemperatureConfig(**{key: v for key, v in t.items() if key in known})
        tag = TemperaturePlan.from_config(cfg).tag()
    except (TypeError, ValueError) as error:
        log.debug("temperature %s: plan not buildable (%s); using values and ratios", t, error)
        tag = base
    extras = {key: v for key, v in t.items() if key not in known and v not in (None, [], {})}
    for key in sorted(extras):
        tag += f"_{key}{_compact(extras[key])}"
    if tag != base:
        return Temperature(tag, "schedule", math.nan)
    if k == 1:
        return Temperature(tag, "single", values[0])
    return Temperature(tag, "mix", math.nan)


def _compact(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "-".join(_compact(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return "-".join(f"{k}{_compact(v)}" for k, v in sorted(value.items()))
    return str(value)


def prm_roles(cfg: dict[str, Any]) -> tuple[str | None, str]:
    """`(guided_by, scored_by)` of a run from its config: the PRM that steered the search (None
    under Best-of-N, whose samples no PRM steers, and adaptive Best-of-N unless its probe reads
    the PRM, `signal=prm_spread`) and the PRM whose scores select its answers.
    They differ only in a re-scored beam search or DVTS run (`source_prm`)."""
    scored_by = str(cfg["prm"]["name"])
    approach = cfg["approach"]
    if approach["name"] == "best_of_n" or (
        approach["name"] == "adaptive_bon" and approach.get("signal") != "prm_spread"
    ):
        return None, scored_by
    source = cfg.get("source_prm")
    return (str(source["name"]) if source else scored_by), scored_by


def approach_label(cfg: dict[str, Any]) -> str:
    """The approach and the settings a reader compares it by, as run names and reports show
    it: `best_of_n`, `beam_search-m4`, `dvts-m4`, `adaptive_bon-majority-p0.25` (signal, probe
    fraction, `-th...` thresholds when set, `-probe<T>` a probe temperature when set),
    `particle_filter-tau1` (tau, then its schedule as temperature tags write one, `-score` for
    the raw-score signal, `-systematic` for systematic resampling)."""
    approach = cfg["approach"]
    name = approach["name"]
    if name == "adaptive_bon":
        name += f"-{approach.get('signal', 'majority')}-p{_compact(approach['probe_fraction'])}"
        if approach.get("thresholds") is not None:
            name += f"-th{_compact(list(approach['thresholds']))}"
        if approach.get("probe_temperature") is not None:
            name += f"-probe{_compact(float(approach['probe_temperature']))}"
    elif name == "particle_filter":
        r = approach.get("resampling") or {}
        plan = TemperaturePlan(
            values=(float(r.get("tau", 1.0)),),
            ratios=(1.0,),
            schedule=str(r.get("schedule", "constant")),
            start=float(r.get("start", 1.0)),
            end=float(r.get("end", 1.0)),
            horizon=int(r.get("horizon", 8)),
            switch_at=int(r.get("switch_at", 2)),
        )
        name += "-tau" + plan.tag()[1:]  # the tag's `T` is the sampling temperature's
        if r.get("signal", "logit") != "logit":
            name += f"-{r['signal']}"
        if r.get("scheme", "multinomial") != "multinomial":
            name += f"-{r['scheme']}"
    elif name != "best_of_n" and approach.get("beam_width"):
        name += f"-m{approach['beam_width']}"
    return name
