"""Typed configuration: one dataclass per config group, the top-level `Config`, the server's.

Hydra composes `hotncold/conf/` against these schemas (registered in `hotncold.config.hydra`),
so a typo in a key or a value of the wrong type fails at composition. What a type cannot express
(ratios summing to 1, `n` divisible by `beam_width`, ...) is checked by the component that owns
the setting (see `hotncold.experiment.validate`), once, before any dataset or model loads.
This module is a leaf: it imports nothing of hotncold (and no Hydra), so every component can
use the schemas without pulling in any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_SYSTEM_PROMPT = (
    "Solve the math problem step by step. Write one short step per paragraph and show every "
    "calculation. End with the line: The final answer is $\\boxed{ANSWER}$, where ANSWER is "
    "only the final number or expression."
)

HOTNCOLD_LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] "
    "+ '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)
"""hotncold's Llama 3 chat template: Llama 3's turns without the "Cutting Knowledge Date /
Today Date" header its own template writes into every system message."""


@dataclass
class ModelConfig:
    """The generator: which weights, how prompts are built, and how vLLM runs them."""

    name: str = "smollm2_135m"
    """Short name used in run directory names and reports."""
    path: str = "embedded:smollm2_135m"
    """A hub id, a local folder, or `embedded:smollm2_135m` (the packaged CPU model)."""
    family: str = "smollm2"
    """The chat format of the model's tokenizer (llama3, qwen2, smollm2 or other): the prompt
    option picks its chat template by it (`prompt.chat_templates`), so the same prompting can
    go with any model. Set in each model's YAML; `other` always uses the tokenizer's own."""
    step_delimiter: str = "\n\n"
    """Text that ends a reasoning step; completions are split on it for the PRM."""
    max_tokens: int = 1024
    """Most tokens generated per completion."""
    max_model_len: int = 4096
    """Context length the engine reserves per sequence (prompt plus completion); clamped to
    what the model's config.json allows (logged), refused if max_tokens cannot fit there."""
    top_p: float = 1.0
    """Nucleus sampling threshold, applied at every temperature."""
    dtype: str = "auto"
    """`auto` means float32 on the CPU (no bf16 units here) and bfloat16 on GPUs."""
    gpu_memory_utilization: float = 0.9
    """Most of the GPU the generator's engine may take (GPU only). Alone it takes this; beside
    an in-process PRM engine both are sized from their weights, the generator up to this."""
    cpu_kv_cache_gib: float | None = None
    """KV cache size on the CPU backend, in GiB; null sizes it from each run's batch (problems x
    n x (prompt + max_tokens)) within the memory the machine has (hotncold.engine.kv_cache).
    Changes speed, never results, so it is not part of a run's name."""
    enforce_eager: bool | None = None
    """Skip torch.compile and CUDA graphs; null means true on the CPU (start-up 30 s, not 200 s)."""
    tensor_parallel_size: int = 1
    """GPUs one engine spans."""
    trust_remote_code: bool = False
    """Allow model code from the hub (needed by some PRMs)."""
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments passed verbatim to `vllm.LLM`."""


@dataclass
class PromptConfig:
    """How a problem becomes the generator's prompt: the chat's messages and how they render.

    An axis of its own, independent of the model: `prompt=sal` puts search-and-learn's
    prompting in front of any model. The chat is [system (when set), user]; it is rendered by
    the chat template that `chat_templates` names for the model's `family`, else by the
    tokenizer's own, with `date_string` passed to the template.
    """

    name: str = "hotncold"
    """Short name (reports); the run name's hash covers every field."""
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    """System message of the chat; null sends the user message alone."""
    user_template: str = "{problem}"
    """The user message; `{problem}` is replaced by the problem text."""
    chat_templates: dict[str, str | None] = field(
        default_factory=lambda: {"llama3": HOTNCOLD_LLAMA3_TEMPLATE}
    )
    """Jinja chat template per model family (`model.family`), replacing the tokenizer's own;
    a family not listed, or listed as null, renders with the tokenizer's own template."""
    date_string: str = "26 Jul 2024"
    """Passed to the chat template as `date_string`: templates that print a date (Llama 3's
    "Today Date", search-and-learn's) print this one instead of the day the run happens, so a
    prompt never changes with the calendar. 26 Jul 2024 is the date those templates fall back to
    when no clock is available."""
    add_special_tokens: bool = False
    """Start the prompt with what the tokenizer adds to any text it encodes (Llama 3: its BOS
    token; Qwen2 and SmolLM2 add nothing), as vLLM does to text prompts. For templates that
    leave the BOS token out (search-and-learn's Llama 3 template); templates that write it
    themselves need false, or the prompt starts with two."""


@dataclass
class PRMConfig:
    """The process reward model that scores every step of a solution: what every kind shares.

    `name` picks the implementation (see `hotncold.prm.registry.KINDS`); each kind has a schema
    of its own below, extending this one with only the settings it reads (the equation
    checker's scores, a model's weights and engine, a generative PRM's label tokens, ...), so
    `--cfg job` shows what applies and a setting of another kind fails at composition. Each
    `hotncold/conf/prm/<name>.yaml` names its schema and sets the published model's values, so
    `prm=<name>` alone is right for that model.
    """

    name: str = "equation_checker"
    """Which PRM scores the steps (`hotncold.prm.registry.KINDS`; several names share a class)."""
    agg_strategy: str = "min"
    """How step scores become one solution score: last, min, prod or mean."""
    server_url: str | None = None
    """Score through a PRM server (`python -m hotncold.prm_server prm=...`) at this URL instead
    of scoring here, e.g. http://gpu-node-3:8088."""
    incremental: bool = True
    """Score only new steps and let the engine reuse cached prefixes. false re-reads every full
    prefix at every call, as search-and-learn does (for comparisons; scores are the same)."""
    batch_size: int = 256
    """Most (problem, steps) pairs per scoring call."""


@dataclass
class EquationCheckerConfig(PRMConfig):
    """`prm=equation_checker`: checks the arithmetic claims of each step; loads no model."""

    neutral_score: float = 0.5
    """Score of a step with nothing to check."""
    correct_score: float = 1.0
    """Score of a step whose every claim checks out."""
    wrong_score: float = 0.0
    """Score of a step where every claim is false."""


@dataclass
class SelfCertaintyConfig(PRMConfig):
    """`prm=self_certainty`: the generator's own confidence in each step, read from its prompt
    log-probabilities on the generator's engine; no settings beyond the shared ones."""


@dataclass
class ModelPRMConfig(PRMConfig):
    """A PRM with weights of its own, run by a vLLM engine (in this process or a PRM server)."""

    model_path: str | None = None
    """Weights of the PRM (hub id or folder)."""
    dtype: str = "auto"
    """PRM engine dtype; `auto` means float32 on the CPU and the model's dtype on GPUs."""
    max_model_len: int = 8192
    """Longest PRM input (tokens) the PRM engine accepts: problem, steps and format tokens;
    clamped to what the PRM's config.json allows (logged)."""
    gpu_memory_utilization: float | None = None
    """Share of the GPU the PRM engine takes; null sizes it, and the generator's, from their
    weights and the card's memory (`hotncold.engine.memory`), refusing a pair that cannot fit.
    A number fixes the PRM's share (the generator is sized into the rest)."""
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


@dataclass
class GenerativePRMConfig(ModelPRMConfig):
    """`prm=rlhflow_8b`: a PRM read from the next-token probabilities of two label tokens."""

    positive_token: str = "+"
    """The token that means a correct step."""
    negative_token: str = "-"
    """The token that means a wrong step; the score is P(+) / (P(+) + P(-))."""


@dataclass
class MathShepherdConfig(GenerativePRMConfig):
    """`prm=math_shepherd`: steps tagged with its step tag, read at each tag."""

    step_separator: str | None = None
    """Text put between tagged steps; null means the card's "\n"."""


@dataclass
class JudgePRMConfig(GenerativePRMConfig):
    """`prm=judge`: any chat model asked whether the last step so far is correct."""

    model_path: str | None = None
    """The judge's weights (hub id or folder); null judges with the generator itself, on the
    generator's engine."""
    system_prompt: str | None = None
    """System message of the judge's chat; null sends the user message alone."""
    judge_template: str = (
        "Here is a math problem and a solution written one step per line.\n\n"
        "Problem:\n{problem}\n\nSolution:\n{steps}\n\n"
        "Is the last step of the solution correct? Answer with a single character: "
        "{positive} if it is correct, {negative} if it is wrong."
    )
    """The user message; {problem}, {steps} (steps so far, one per line, the judged one last),
    {positive} and {negative} are filled in. Keep {steps} before the question so that the
    requests for successive steps share their prefix."""


@dataclass
class QwenMathPRMConfig(ModelPRMConfig):
    """`prm=qwen_math_prm_7b`: Qwen2.5-Math-PRM's chat, a reward read at each `<extra_0>`."""

    system_prompt: str | None = None
    """System message of its chat (the option sets the card's)."""


@dataclass
class HeadPRMConfig(ModelPRMConfig):
    """`prm=skywork_*`, `prm=trl`: a value or token-classification head read at each step's
    last token."""

    step_separator: str | None = None
    """Text the format puts after each step; null means the model's documented one (skywork
    "\n"; trl the checkpoint's prm_config.json, else "\n")."""


PRM_SCHEMAS: dict[str, type[PRMConfig]] = {
    "equation_checker": EquationCheckerConfig,
    "self_certainty": SelfCertaintyConfig,
    "generative": GenerativePRMConfig,
    "math_shepherd": MathShepherdConfig,
    "judge": JudgePRMConfig,
    "qwen_math_prm": QwenMathPRMConfig,
    "head": HeadPRMConfig,
}
"""Each PRM schema by the name its options use (`defaults: [schema_<name>]` in
hotncold/conf/prm/*.yaml; registered by `hotncold.config.hydra`)."""


@dataclass
class ApproachConfig:
    """The test-time search algorithm."""

    name: str = "best_of_n"
    """best_of_n, beam_search, dvts, adaptive_bon or particle_filter (the last two have
    schemas of their own, `APPROACH_SCHEMAS`, adding their settings to these)."""
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
    """Every approach: a completion the model did not finish (truncated, `empty_step`, a DVTS
    sibling left `partial`) has no answer: it never votes, naive selection never picks it and
    it is never correct (applied by the metrics; Best-of-N's samples keep their slots).
    beam_search/dvts also choose their outputs by it: only finished (EOS) solutions, best
    first, repeated in turn to fill the slots (copies carry `extra.copy_of`): beam search's n
    slots from its completed pool, each DVTS subtree's m slots from its last expansion; with
    none finished, the unfinished ones, marked `finished: false`. False lets unfinished text
    vote with its last number and returns what search-and-learn does (beam search: the n best
    of the pool, truncated ones included; DVTS: the last expansion as it is)."""
    answer_stop: bool = False
    """Every approach: a solution ends right after its first complete `\\boxed{...}` (braces
    balanced), finished with finish reason `answer`; nothing after it is generated (a stop
    string at `boxed{`, then the answer's braces closed in further engine rounds:
    `hotncold.engine.answer_stop`). A beam search candidate so ended joins the completed pool, a
    DVTS subtree whose pick it is stops growing (search-and-learn's DVTS stops a subtree once
    `boxed{` appears). False (the default): solutions go on until the model ends them."""
    scheduler: str = "async"
    """beam_search/dvts: how the problems of a batch share the engine (the records are the same
    either way; not part of run names). `async` (the default): each problem submits its next
    requests to the running engine as soon as its own candidates are scored, so no problem
    waits for another's longest step (a PRM on the generator's own engine, such as
    self_certainty, scores only once the requests in flight are done); 1.29x (beam search) and
    1.29x (DVTS) faster than `barrier` on the CPU benchmark, the same records. `barrier`: every
    iteration is one engine call for every candidate of every problem, then one PRM call, so
    each iteration waits for the slowest problem's longest step (what scripted tests count
    calls under). The particle filter always advances all particles together."""
    open_batches: int = 4
    """beam_search/dvts under `async`: how many batches of problems (`open_batches *
    batch_size`) a run may have open at once. The run keeps up to `batch_size * n` samples in
    flight, what its KV cache is sized for, and starts its next problem whenever fewer are: a
    step search has far fewer samples in flight than candidates (each problem waits for its
    candidates' longest step before it prunes), so a batch of problems alone leaves the engine
    part idle. Each problem is recorded as soon as it ends (an interrupt loses at most the
    problems open). 1: no more open than a batch, the next starting as one ends. The records
    are the same for any value (not part of run names)."""


@dataclass
class AdaptiveBoNConfig(ApproachConfig):
    """`approach=adaptive_bon`: Best-of-N whose temperature is chosen per problem from a probe.

    A probe of `ceil(probe_fraction * n)` samples at `probe_temperature`, then the rest of the
    budget (n minus the probe) at one of `temperature.values` (the ladder, coldest first),
    picked from how much the probe disagrees with itself (`signal`, mapped to [0, 1]) by
    `thresholds` (hotncold.search.adaptive_bon documents the mapping)."""

    name: str = "adaptive_bon"
    probe_fraction: float = 0.25
    """Share of the budget spent on the probe, rounded up; at least 2 samples (one sample
    cannot disagree with itself) and at least one left for the rest. n=8: 2, n=16: 4."""
    probe_temperature: float | None = None
    """Temperature of the probe; null means the coldest of `temperature.values`."""
    signal: str = "majority"
    """How disagreement is read from the probe: majority (1 minus the majority answer's share,
    scaled to [0, 1]), entropy (of the answers, over log of the probe size) or prm_spread (max
    minus min of the probe's aggregated PRM scores). How a sample without an answer counts:
    `unanswered`."""
    unanswered: str = "ignore"
    """How a probe sample without an answer (no final answer in its text; under `finished_only`
    also any unfinished one) enters `majority` and `entropy`. ignore: the disagreement is read
    from the answered samples only, and a probe with fewer than two answers reads as agreeing
    (d = 0: nothing in it says heat would help; unfinished samples are what heat makes more of:
    in the CPU quickstart 81% of T=1.2 samples hit the token limit against 42% at T=0.4).
    distinct: each counts as an answer of its own, i.e. as disagreement (the policy before this
    setting existed, which heats up exactly where the solutions are too long to finish)."""
    thresholds: list[float] | None = None
    """Increasing cut points in [0, 1], one fewer than `temperature.values`: the rest is sampled
    at values[i] where i is how many thresholds the disagreement reaches (>=). null: equal
    bins, i = min(k - 1, floor(k * disagreement)) for k values."""


@dataclass
class ResamplingConfig:
    """Particle filtering's resampling: weights proportional to exp(signal / tau)."""

    signal: str = "logit"
    """logit: the logit of each particle's aggregated PRM score (clipped to [1e-7, 1 - 1e-7]),
    so tau=1 gives weights proportional to the odds r / (1 - r), its_hub's particle filtering;
    score: the aggregated score itself (REBASE's softmax over raw scores)."""
    tau: float = 1.0
    """Resampling temperature: the weights' exponent is signal / (tau * factor(step)). Small
    tau follows the PRM greedily, large tau resamples nearly uniformly."""
    schedule: str = "constant"
    """How tau changes over the steps, as `temperature.schedule`: constant, linear, cosine (from
    `start` at step 0 to `end` at step `horizon`) or switch (`start` for `switch_at` steps)."""
    start: float = 1.0
    """Factor multiplying tau at the first step."""
    end: float = 1.0
    """Factor multiplying tau at the end of the schedule."""
    horizon: int = 8
    """linear/cosine: the step at which the factor reaches `end`."""
    switch_at: int = 2
    """switch: the number of first steps resampled at `start`."""
    scheme: str = "multinomial"
    """multinomial (n independent draws, its_hub's) or systematic (one uniform offset, n evenly
    spaced positions: every particle gets floor or ceil of n times its weight, lower variance)."""


@dataclass
class ParticleFilterConfig(ApproachConfig):
    """`approach=particle_filter`: n particles grow one step at a time and are resampled after
    every step in proportion to their PRM weights (hotncold.search.particle_filter)."""

    name: str = "particle_filter"
    resampling: ResamplingConfig = field(default_factory=ResamplingConfig)


APPROACH_SCHEMAS: dict[str, type[ApproachConfig]] = {
    "adaptive_bon": AdaptiveBoNConfig,
    "particle_filter": ParticleFilterConfig,
}
"""The approaches with settings of their own, by name (`defaults: [schema_<name>]` in
hotncold/conf/approach/<name>.yaml; registered by `hotncold.config.hydra`); every other
approach is typed by `ApproachConfig`, so its run names never saw these fields."""


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
    gpu_memory_gib: float | None = None
    """Memory of the GPU each job gets, in GiB (a card's name gives it: an A100 40GB has 40);
    null: unknown. `python -m hotncold.doctor` and `.prefetch` check that the composed
    generator and PRM fit it before anything is submitted; jobs size their engines from the
    card they actually get."""
    requeue_lock_wait_s: float = 180.0
    """A requeued Slurm job whose earlier start still holds the run directory's lock (its node
    is slow to kill it, or NFS keeps a dead node's lock until its 90 s lease runs out) waits
    this long for it before giving up; any other holder is refused at once."""


@dataclass
class MetricsConfig:
    """How accuracies at N < n are estimated."""

    num_subsets: int = 256
    """Random subsets of size N averaged per problem for each N < n."""
    seed: int = 0
    """Seed of the subset sampler."""
    selection_temperatures: list[float] = field(default_factory=lambda: [0.01, 0.1, 0.3, 1.0])
    """Soft Best-of-N: the selection temperatures tau at which metrics.json (and the
    analyzer) report the expected accuracy of picking a completion with probability
    proportional to exp(score / tau) (tau -> 0 is `naive`, a large tau a random pick). Adds
    numbers beside the others and changes none of them, so it is not part of a run's name."""


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
    logprobs: bool = False
    """Store every completion's per-token log-probabilities in completions.jsonl
    (`token_logprobs`, with `token_ends`, each token's end in `text`): the sampled tokens'
    log-probabilities under the model's own distribution (before temperature), so confidence
    signals (self-certainty, DeepConf-style filtering) can be computed from a finished run;
    `python -m hotncold.rescore prm=self_certainty` reads them instead of the engine. Adds
    data, changes no sample, so it is not part of a run's name."""


@dataclass
class Config:
    """One experiment: everything that determines its results, plus where it writes them."""

    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    prm: PRMConfig = field(default_factory=EquationCheckerConfig)
    """Its type is the kind's own schema (`PRM_SCHEMAS`); the default is the equation checker."""
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
    """Problems whose samples the engine holds at once (the CPU KV cache is sized for
    `batch_size * n` sequences). Best-of-N, adaptive Best-of-N, the particle filter and the
    `barrier` scheduler solve `batch_size` problems per call and checkpoint after each batch;
    beam search and DVTS under `async` keep `batch_size * n` samples in flight over up to
    `approach.open_batches` batches of open problems and checkpoint each problem as it ends."""
    out_dir: str = "outputs/manual"
    """Run directory (Hydra sets it from `run_name`)."""
    run_name: str = ""
    """Name derived from the resolved config (set by Hydra's resolver; informational here)."""
    sweep_name: str = "default"
    """Folder under `multirun/` that groups the runs of a sweep."""
    verbose: bool = False
    """Show vLLM's logs and its processes' output on the terminal; otherwise they go to the
    run's run.log only (`hotncold.experiment.terminal`)."""
    overrides: list[str] = field(default_factory=list)
    """The command-line overrides that made this config (recorded in run.json)."""
    source_prm: dict[str, Any] | None = None
    """Set by `python -m hotncold.rescore` only: this run re-scores the stored completions of
    another run, made with this PRM (its config): under beam search and DVTS the PRM that
    guided the search, under Best-of-N the one that first scored the samples. `prm` is then the
    PRM that scored this run. null (every run `python -m hotncold` makes): `prm` did both.
    Left out of a run's name when null, so ordinary runs keep their names."""


@dataclass
class RescoreConfig:
    """`python -m hotncold.rescore <run dir | sweep dir> prm=...`: score the stored completions
    of finished runs with another PRM, one derived run per source run."""

    prm: PRMConfig = field(default_factory=EquationCheckerConfig)
    """The PRM that scores (composed from hotncold/conf/prm/ as in a run)."""
    batch_size: int = 32
    """Problem records (a problem of one run), over all the runs re-scored together, sent to
    the PRM in one call, one problem's records of every run side by side; each derived run is
    checkpointed after every batch."""
    out_dir: str | None = None
    """Where derived runs go (one folder each, named from its config); null means
    `<sweep dir>/rescored` for a sweep, `<parent>/rescored` for a run directory."""


@dataclass
class PRMServerConfig:
    """`python -m hotncold.prm_server`: one PRM served over HTTP to many runs."""

    prm: PRMConfig = field(default_factory=EquationCheckerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    """The generator, for PRMs that read it (self_certainty, judge without prm.model_path)."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """The generator's prompting, for PRMs that read the generator (as the runs use it)."""
    host: str = "127.0.0.1"
    """Interface to listen on; 0.0.0.0 serves other machines of the cluster."""
    port: int = 8088
    """TCP port."""
    batch_wait_ms: float = 5.0
    """How long the batcher waits for more concurrent requests before calling the engine."""
