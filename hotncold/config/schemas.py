"""Typed configuration: one dataclass per config group, the top-level `Config`, and `validate()`.

Hydra composes `conf/` against these schemas (registered in `hotncold.schema`), so a typo in a
key or a value of the wrong type fails at composition. `validate()` then checks what a type
cannot express (ratios summing to 1, `n` divisible by `beam_width`, ...) once, before any
dataset or model loads. Nothing here imports Hydra: the core takes plain `Config` objects.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SYSTEM_PROMPT = (
    "Solve the math problem step by step. Write one short step per paragraph and show every "
    "calculation. End with the line: The final answer is $\\boxed{ANSWER}$, where ANSWER is "
    "only the final number or expression."
)

AGG_STRATEGIES = ("last", "min", "prod", "mean")
GPU_MEMORY_SHARED = 0.95
"""Most of an accelerator that a generator and an in-process PRM engine take together."""
APPROACHES = ("best_of_n", "beam_search", "dvts")
DATASET_SOURCES = ("arithmetic", "hub", "file")


class ConfigError(ValueError):
    """A configuration mistake; the message is one line that names the fix."""


@dataclass
class ModelConfig:
    """The generator: which weights, how prompts are built, and how vLLM runs them."""

    name: str = "smollm2_135m"
    """Short name used in run directory names and reports."""
    path: str = "embedded:smollm2_135m"
    """A hub id, a local folder, or `embedded:smollm2_135m` (the packaged CPU model)."""
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    """System message of the chat; null sends the problem alone."""
    user_template: str = "{problem}"
    """The user message; `{problem}` is replaced by the problem text."""
    chat_template: str | None = None
    """Jinja chat template replacing the tokenizer's own (e.g. Llama 3 without its date header)."""
    step_delimiter: str = "\n\n"
    """Text that ends a reasoning step; completions are split on it for the PRM."""
    max_tokens: int = 1024
    """Most tokens generated per completion."""
    max_model_len: int = 4096
    """Context length the engine reserves per sequence (prompt plus completion)."""
    top_p: float = 1.0
    """Nucleus sampling threshold, applied at every temperature."""
    dtype: str = "auto"
    """`auto` means float32 on the CPU (no bf16 units here) and bfloat16 on GPUs."""
    gpu_memory_utilization: float = 0.9
    """Share of accelerator memory vLLM may take (GPU only; lower it when a PRM shares it)."""
    cpu_kv_cache_gib: float = 1.0
    """KV cache size on the CPU backend, in GiB (VLLM_CPU_KVCACHE_SPACE)."""
    enforce_eager: bool | None = None
    """Skip torch.compile and CUDA graphs; null means true on the CPU (start-up 30 s, not 200 s)."""
    tensor_parallel_size: int = 1
    """GPUs one engine spans."""
    trust_remote_code: bool = False
    """Allow model code from the hub (needed by some PRMs)."""
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments passed verbatim to `vllm.LLM`."""


@dataclass
class PRMConfig:
    """The process reward model that scores every step of a solution.

    `name` picks the implementation (see `hotncold.prm.REGISTRY`); the fields after it say which
    weights, which input format details and where it runs. Each `conf/prm/<name>.yaml` sets the
    published model's values, so `prm=<name>` alone is right for that model.
    """

    name: str = "equation_checker"
    """Which PRM scores the steps (see `hotncold.prm.REGISTRY`; several names share a class)."""
    agg_strategy: str = "min"
    """How step scores become one solution score: last, min, prod or mean."""
    neutral_score: float = 0.5
    """Score of a step with nothing to check (equation_checker)."""
    correct_score: float = 1.0
    """Score of a step whose every claim checks out (equation_checker)."""
    wrong_score: float = 0.0
    """Score of a step where every claim is false (equation_checker)."""
    model_path: str | None = None
    """Weights of model-based PRMs (hub id or folder). judge: null judges with the generator."""
    step_separator: str | None = None
    """Text the format puts after each step; null means the model's documented one
    (math_shepherd "\\n" between tagged steps, skywork "\\n", trl "\\n" or the checkpoint's
    prm_config.json)."""
    positive_token: str = "+"
    """Generative PRMs (rlhflow, math_shepherd, judge): the token that means a correct step."""
    negative_token: str = "-"
    """Generative PRMs: the token that means a wrong step; the score is P(+) / (P(+) + P(-))."""
    system_prompt: str | None = None
    """System message of chat formats (qwen_math_prm: the card's; judge: optional)."""
    judge_template: str = (
        "Here is a math problem and a solution written one step per line.\n\n"
        "Problem:\n{problem}\n\nSolution:\n{steps}\n\n"
        "Is the last step of the solution correct? Answer with a single character: "
        "{positive} if it is correct, {negative} if it is wrong."
    )
    """judge: the user message; {problem}, {steps} (steps so far, one per line, the judged one
    last), {positive} and {negative} are filled in. Keep {steps} before the question so that
    the requests for successive steps share their prefix."""
    dtype: str = "auto"
    """PRM engine dtype; `auto` means float32 on the CPU and the model's dtype on GPUs."""
    max_model_len: int = 8192
    """Longest PRM input (tokens) the PRM engine accepts: problem, steps and format tokens."""
    gpu_memory_utilization: float = 0.4
    """Share of accelerator memory the PRM engine takes when it runs in the generator's process;
    the generator then takes at most 0.95 minus this (whatever model.gpu_memory_utilization
    says), so both fit on one GPU."""
    cpu_kv_cache_gib: float = 0.5
    """KV cache of the PRM engine on the CPU backend, in GiB."""
    block_size: int | None = None
    """KV cache block size of the PRM engine. Prefix caching reuses whole blocks, so smaller
    blocks re-read less of a grown solution; null keeps vLLM's default (16 on GPUs, 128 on
    CPUs; 32 is the smallest the CPU backend runs well)."""
    tensor_parallel_size: int = 1
    """GPUs the PRM engine spans."""
    trust_remote_code: bool = False
    """Allow model code from the hub when loading the PRM."""
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments passed verbatim to the PRM's `vllm.LLM`."""
    server_url: str | None = None
    """Score through a PRM server (`python -m hotncold.prm_server prm=...`) at this URL instead
    of loading the PRM here, e.g. http://gpu-node-3:8088."""
    incremental: bool = True
    """Score only new steps and let the engine reuse cached prefixes. false re-reads every full
    prefix at every call, as search-and-learn does (for comparisons; scores are the same)."""
    batch_size: int = 256
    """Most (problem, steps) pairs per scoring call."""


@dataclass
class ApproachConfig:
    """The test-time search algorithm."""

    name: str = "best_of_n"
    """best_of_n, beam_search or dvts."""
    beam_width: int = 4
    """beam_search/dvts: expansions per beam (m). Beam search keeps the best `n // m` beams;
    DVTS grows `n // m` independent subtrees."""
    num_iterations: int = 40
    """beam_search/dvts: most search steps (depths); the last one generates to the end."""
    lookahead: int = 0
    """beam_search/dvts: extra greedy (T=0) steps generated after each candidate only to score
    it (the candidate is ranked by the aggregated scores of its steps plus these); not kept."""
    filter_duplicates: bool = False
    """beam_search: drop unfinished candidates whose text equals an earlier candidate's before
    pruning."""
    finished_only: bool = True
    """beam_search/dvts: return only finished (EOS) solutions, best first, repeated in turn to
    fill the slots (copies carry `extra.copy_of`): beam search's n slots from its completed
    pool, each DVTS subtree's m slots from its last expansion. With none finished, the slots
    keep the unfinished ones, marked `finished: false`. False returns them as search-and-learn
    does (beam search: the n best of the pool, truncated ones included; DVTS: the last
    expansion as it is)."""


@dataclass
class TemperatureConfig:
    """The temperature schedule: which temperatures, in which shares, at which search depth.

    The temperature of a sample is `value * factor(depth)`: the value of its slot (values in
    their ratios, interleaved over the n samples or the m expansions of a beam) times the
    schedule's factor at the depth (step index, from 0) of the step being generated.
    """

    name: str = "default"
    """Short name; run names use the values themselves, so overrides never mislabel a run."""
    values: list[float] = field(default_factory=lambda: [0.8])
    """Temperatures to sample at; several make a multi-temperature mix."""
    ratios: list[float] | None = None
    """Share of the budget per value (sums to 1); null means equal shares."""
    schedule: str = "constant"
    """How temperatures change with search depth: constant, linear or cosine (from `start` at
    step 0 to `end` at step `horizon`, then `end`), or switch (`start` for the first `switch_at`
    steps, then `end`). Non-constant schedules need a step-level approach (beam_search, dvts)."""
    start: float = 1.0
    """Factor multiplying every value at the first step (with values=[1.0]: the temperature)."""
    end: float = 1.0
    """Factor multiplying every value at the end of the schedule."""
    horizon: int = 8
    """linear/cosine: the step (depth, from 0) at which the factor reaches `end`."""
    switch_at: int = 2
    """switch: the number of first steps sampled at `start`; later steps use `end`."""


@dataclass
class DatasetConfig:
    """Where problems come from and which of them to run."""

    name: str = "arithmetic"
    """Short name used in run directory names and reports."""
    source: str = "arithmetic"
    """arithmetic (generated here), hub (a `datasets` hub id) or file (local jsonl/json/parquet)."""
    path: str | None = None
    """Hub id or local file path (hub and file sources)."""
    subset: str | None = None
    """Hub configuration name (e.g. `main` for gsm8k)."""
    split: str = "test"
    """Split to read."""
    problem_field: str = "problem"
    """Column holding the problem text."""
    answer_field: str = "answer"
    """Column holding the gold answer."""
    answer_pattern: str | None = None
    """Regex whose first group extracts the answer from the answer column (gsm8k: `####`)."""
    level_field: str | None = "level"
    """Column with the difficulty level (1-5); null when the dataset has none."""
    subject_field: str | None = "subject"
    """Column with the subject; null when the dataset has none."""
    id_field: str | None = "unique_id"
    """Column with a unique problem id; null numbers rows `<name>/<index>`."""
    levels: list[int] | None = None
    """Keep only these levels."""
    start: int = 0
    """First problem to keep (after the level filter)."""
    limit: int | None = None
    """Most problems to keep from `start`."""
    num_shards: int = 1
    """Split the selected problems into this many contiguous shards..."""
    shard: int = 0
    """...and run this one (0-based)."""
    per_level: int = 20
    """arithmetic: problems generated per level."""
    generator_seed: int = 0
    """arithmetic: seed of the problem generator (the same seed gives the same problems)."""


@dataclass
class ClusterConfig:
    """Where jobs run; the matching Hydra launcher is chosen by the `cluster` group option."""

    name: str = "local"


@dataclass
class MetricsConfig:
    """How accuracies at N < n are estimated."""

    num_subsets: int = 256
    """Random subsets of size N averaged per problem for each N < n."""
    seed: int = 0
    """Seed of the subset sampler."""


@dataclass
class OutputConfig:
    """Where results go besides the run directory (never changes what a run computes)."""

    push_to_hub: bool = False
    """After a run finishes, push it to `hub_dataset_id` as a dataset config named after the
    run (one row per problem x completion), plus its run.json, metrics.json and config.yaml
    under `runs/<run name>/`. Checked before any model loads (network, token); a failed push
    leaves the run finished and is recorded in run.json."""
    hub_dataset_id: str | None = None
    """The dataset repository, `owner/name` (created if missing)."""
    hub_private: bool = True
    """Create the repository private (an existing repository keeps its visibility)."""
    hub_split: str = "train"
    """Split name of the pushed rows inside the run's config."""


@dataclass
class Config:
    """One experiment: everything that determines its results, plus where it writes them."""

    model: ModelConfig = field(default_factory=ModelConfig)
    prm: PRMConfig = field(default_factory=PRMConfig)
    approach: ApproachConfig = field(default_factory=ApproachConfig)
    temperature: TemperatureConfig = field(default_factory=TemperatureConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    n: int = 8
    """Test-time compute budget: completions per problem."""
    seed: int = 0
    """Sampling seed; every request's seed derives from it and the problem id."""
    batch_size: int = 32
    """Problems sent to the engine together; results are checkpointed after each batch."""
    out_dir: str = "outputs/manual"
    """Run directory (Hydra sets it from `run_name`)."""
    run_name: str = ""
    """Name derived from the resolved config (set by Hydra's resolver; informational here)."""
    sweep_name: str = "default"
    """Folder under `multirun/` that groups the runs of a sweep."""
    overrides: list[str] = field(default_factory=list)
    """The command-line overrides that made this config (recorded in run.json)."""


@dataclass
class PRMServerConfig:
    """`python -m hotncold.prm_server`: one PRM served over HTTP to many runs."""

    prm: PRMConfig = field(default_factory=PRMConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    """The generator, for PRMs that read it (self_certainty, judge without prm.model_path)."""
    host: str = "127.0.0.1"
    """Interface to listen on; 0.0.0.0 serves other machines of the cluster."""
    port: int = 8088
    """TCP port."""
    batch_wait_ms: float = 5.0
    """How long the batcher waits for more concurrent requests before calling the engine."""


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
    # Where and how the PRM runs; its scores are the same in-process, served, or recomputed.
    "prm.server_url",
    "prm.incremental",
    "prm.batch_size",
    "prm.gpu_memory_utilization",
    "prm.cpu_kv_cache_gib",
    "prm.block_size",
)


def validate(cfg: Config) -> None:
    """Raise ConfigError naming the fix for anything the schema types cannot catch."""
    if cfg.n < 1:
        raise ConfigError(f"n={cfg.n}: the budget must be at least 1; set n=1 or more")
    if cfg.batch_size < 1:
        raise ConfigError(f"batch_size={cfg.batch_size}: set batch_size=1 or more")
    _validate_temperature(cfg)
    _validate_approach(cfg)
    _validate_model(cfg.model)
    _validate_prm(cfg.prm, cfg.model)
    _validate_dataset(cfg.dataset)
    if cfg.metrics.num_subsets < 1:
        raise ConfigError("metrics.num_subsets must be at least 1")
    validate_output(cfg.output)


def _validate_temperature(cfg: Config) -> None:
    t = cfg.temperature
    if not t.values:
        raise ConfigError("temperature.values is empty; give at least one, e.g. [0.8]")
    for v in t.values:
        if not math.isfinite(v) or v < 0:
            raise ConfigError(
                f"temperature {v} is invalid; temperatures must be >= 0 (0 is greedy)"
            )
    if t.ratios is not None:
        if len(t.ratios) != len(t.values):
            raise ConfigError(
                f"temperature.ratios has {len(t.ratios)} entries for {len(t.values)} values; "
                "give one ratio per value"
            )
        if any(r < 0 for r in t.ratios):
            raise ConfigError(f"temperature.ratios {list(t.ratios)} has a negative share")
        if abs(sum(t.ratios) - 1.0) > 1e-6:
            raise ConfigError(
                f"temperature.ratios {list(t.ratios)} sum to {sum(t.ratios):g}; they must sum to 1"
            )
    if len(set(t.values)) != len(t.values):
        raise ConfigError(f"temperature.values {list(t.values)} repeats a value; list each once")
    _validate_schedule(cfg)
    from hotncold.search.temperature import allocate

    k = len(t.values)
    if cfg.approach.name == "best_of_n":
        if cfg.n < k:
            raise ConfigError(
                f"n={cfg.n} is smaller than the {k} temperatures in temperature.values; "
                f"raise n to at least {k}"
            )
        counts = allocate(cfg.n, t.ratios or [1.0 / k] * k)
        for value, ratio, count in zip(t.values, t.ratios or [1.0 / k] * k, counts):
            if ratio > 0 and count == 0:
                raise ConfigError(
                    f"temperature {value} (ratio {ratio:g}) gets 0 of n={cfg.n} completions; "
                    "raise n or its ratio"
                )
    elif cfg.approach.name in ("beam_search", "dvts") and cfg.approach.beam_width >= 1:
        # every beam's m expansions are split over the values: each must get at least one
        m = cfg.approach.beam_width
        shares = t.ratios or [1.0 / k] * k
        for value, ratio, count in zip(t.values, shares, allocate(m, shares)):
            if ratio > 0 and count == 0:
                raise ConfigError(
                    f"temperature {value} (ratio {ratio:g}) gets 0 of the "
                    f"approach.beam_width={m} expansions of a beam; raise beam_width "
                    f"(a multiple of {k} tries every temperature) or change temperature.ratios"
                )


def _validate_schedule(cfg: Config) -> None:
    from hotncold.search.temperature import SCHEDULES

    t = cfg.temperature
    if t.schedule not in SCHEDULES:
        raise ConfigError(
            f"temperature.schedule={t.schedule!r} is unknown; use one of {', '.join(SCHEDULES)}"
        )
    for key in ("start", "end"):
        value = getattr(t, key)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"temperature.{key}={value} must be a factor >= 0")
    if t.schedule == "constant":
        if t.start != 1.0 or t.end != 1.0:
            raise ConfigError(
                f"temperature.start={t.start:g}/end={t.end:g} have no effect with "
                "temperature.schedule=constant; set temperature.schedule=linear, cosine or "
                "switch (or leave start and end at 1)"
            )
        return
    if t.horizon < 1:
        raise ConfigError(f"temperature.horizon={t.horizon} must be at least 1 step")
    if t.switch_at < 1:
        raise ConfigError(f"temperature.switch_at={t.switch_at} must be at least 1 step")
    if cfg.approach.name == "best_of_n":
        raise ConfigError(
            f"temperature.schedule={t.schedule} changes the temperature per step, but best_of_n "
            "samples whole solutions; use approach=dvts approach.beam_width=1 (n independent "
            "solutions sampled step by step) or approach=beam_search"
        )


def _validate_approach(cfg: Config) -> None:
    a = cfg.approach
    if a.name not in APPROACHES:
        raise ConfigError(
            f"approach.name={a.name!r} is unknown; use one of {', '.join(APPROACHES)}"
        )
    if a.name != "best_of_n":
        if a.beam_width < 1:
            raise ConfigError(f"approach.beam_width={a.beam_width}: set it to 1 or more")
        if cfg.n % a.beam_width:
            raise ConfigError(
                f"n={cfg.n} is not divisible by approach.beam_width={a.beam_width}; "
                "choose n as a multiple of beam_width"
            )
        if a.num_iterations < 1:
            raise ConfigError("approach.num_iterations must be at least 1")
        if a.lookahead < 0:
            raise ConfigError("approach.lookahead must be 0 or more")


def _validate_model(m: ModelConfig) -> None:
    if m.max_tokens < 1:
        raise ConfigError(f"model.max_tokens={m.max_tokens}: set it to 1 or more")
    if m.max_tokens >= m.max_model_len:
        raise ConfigError(
            f"model.max_tokens={m.max_tokens} leaves no room for the prompt in "
            f"model.max_model_len={m.max_model_len}; lower max_tokens or raise max_model_len"
        )
    if "{problem}" not in m.user_template:
        raise ConfigError("model.user_template must contain {problem}")
    if not m.step_delimiter:
        raise ConfigError("model.step_delimiter is empty; use e.g. '\\n\\n'")
    if not 0 < m.top_p <= 1:
        raise ConfigError(f"model.top_p={m.top_p} must be in (0, 1]")
    if m.dtype not in ("auto", "float32", "float16", "bfloat16"):
        raise ConfigError(f"model.dtype={m.dtype!r}: use auto, float32, float16 or bfloat16")


def _validate_prm(p: PRMConfig, model: ModelConfig | None = None) -> None:
    from hotncold.prm.registry import NEEDS_MODEL_PATH, PRM_NAMES, needs_own_engine

    if p.name not in PRM_NAMES:
        raise ConfigError(f"prm.name={p.name!r} is unknown; use one of {', '.join(PRM_NAMES)}")
    if p.agg_strategy not in AGG_STRATEGIES:
        raise ConfigError(
            f"prm.agg_strategy={p.agg_strategy!r} is unknown; "
            f"use one of {', '.join(AGG_STRATEGIES)}"
        )
    if p.batch_size < 1:
        raise ConfigError("prm.batch_size must be at least 1")
    if p.server_url is not None:
        if not p.server_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"prm.server_url={p.server_url!r} is not an http(s) URL; "
                "use e.g. prm.server_url=http://localhost:8088"
            )
        return  # the server validated its own PRM settings when it started
    if p.dtype not in ("auto", "float32", "float16", "bfloat16"):
        raise ConfigError(f"prm.dtype={p.dtype!r}: use auto, float32, float16 or bfloat16")
    if p.max_model_len < 16:
        raise ConfigError(f"prm.max_model_len={p.max_model_len} is too small; use e.g. 8192")
    if p.cpu_kv_cache_gib <= 0:
        raise ConfigError("prm.cpu_kv_cache_gib must be positive (e.g. 0.5)")
    if p.block_size is not None and (p.block_size < 1 or p.block_size % 16):
        raise ConfigError(f"prm.block_size={p.block_size}: use a multiple of 16 (32 on CPUs)")
    if p.positive_token == p.negative_token:
        raise ConfigError("prm.positive_token and prm.negative_token must differ")
    if p.step_separator == "":
        raise ConfigError("prm.step_separator is empty; use null for the model's own separator")
    if p.name in NEEDS_MODEL_PATH and not p.model_path:
        raise ConfigError(
            f"prm={p.name} needs prm.model_path (the trained checkpoint: a folder or hub id)"
        )
    if p.name == "judge":
        for key in ("{problem}", "{steps}"):
            if key not in p.judge_template:
                raise ConfigError(f"prm.judge_template must contain {key}")
    if not 0 < p.gpu_memory_utilization <= 1:
        raise ConfigError(
            f"prm.gpu_memory_utilization={p.gpu_memory_utilization} must be in (0, 1]"
        )
    if model is not None and needs_own_engine(p, model):
        left = GPU_MEMORY_SHARED - p.gpu_memory_utilization
        if left < 0.1:
            raise ConfigError(
                f"prm.gpu_memory_utilization={p.gpu_memory_utilization:g} leaves the generator "
                f"{max(left, 0):.2f} of the accelerator they share; lower it (e.g. 0.4) or serve "
                "the PRM elsewhere (prm.server_url)"
            )


def validate_server(cfg: PRMServerConfig) -> None:
    """`validate` for `python -m hotncold.prm_server`."""
    if cfg.prm.server_url is not None:
        raise ConfigError("a PRM server cannot itself use prm.server_url; drop it")
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"port={cfg.port} is not a TCP port")
    _validate_model(cfg.model)
    _validate_prm(cfg.prm)  # alone on its machine: no memory split with a generator


_SPLIT = re.compile(r"\w+(\.\w+)*")  # what `datasets` accepts as a split name


def validate_output(o: OutputConfig) -> None:
    """The `output` group's part of `validate` (also used by `python -m hotncold.push`)."""
    if o.push_to_hub and not o.hub_dataset_id:
        raise ConfigError(
            "output.push_to_hub=true needs output.hub_dataset_id=<owner>/<name> "
            "(the dataset repository to push to)"
        )
    repo = o.hub_dataset_id
    if repo is not None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            # the owner is required: a bare name would land in whatever account the token is
            if repo.count("/") != 1:
                raise HFValidationError("no owner")
            validate_repo_id(repo)
        except HFValidationError:
            raise ConfigError(
                f"output.hub_dataset_id={repo!r} is not a hub repository id; use <owner>/<name> "
                "(letters, digits, '-', '_', '.'), e.g. output.hub_dataset_id=my-org/hotncold-runs"
            ) from None
    if not _SPLIT.fullmatch(o.hub_split):
        raise ConfigError(
            f"output.hub_split={o.hub_split!r} is not a split name; use letters, digits and _ "
            "(e.g. train)"
        )


def _validate_dataset(d: DatasetConfig) -> None:
    if d.source not in DATASET_SOURCES:
        raise ConfigError(
            f"dataset.source={d.source!r} is unknown; use one of {', '.join(DATASET_SOURCES)}"
        )
    if d.source in ("hub", "file") and not d.path:
        raise ConfigError(f"dataset.source={d.source} needs dataset.path (a hub id or a file)")
    if d.start < 0:
        raise ConfigError(f"dataset.start={d.start} must be 0 or more")
    if d.limit is not None and d.limit < 1:
        raise ConfigError(f"dataset.limit={d.limit} selects nothing; set it to 1 or more (or null)")
    if d.num_shards < 1:
        raise ConfigError(f"dataset.num_shards={d.num_shards} must be at least 1")
    if not 0 <= d.shard < d.num_shards:
        raise ConfigError(
            f"dataset.shard={d.shard} is outside 0..{d.num_shards - 1} "
            f"for num_shards={d.num_shards}"
        )
    if d.per_level < 1:
        raise ConfigError("dataset.per_level must be at least 1")
    if d.levels is not None and not d.levels:
        raise ConfigError("dataset.levels is empty; list levels to keep or set it to null")
