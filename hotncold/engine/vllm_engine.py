"""The generation engine on vLLM: the only module that imports vLLM.

`VLLMEngine` implements the `Engine` protocol of `hotncold.engine.requests` on `vllm.LLM`, plus
the scoring calls PRMs read (label and prompt log-probabilities, pooled head outputs).
`get_engine` keeps one engine per (weights, engine settings) per process: jobs of a
basic-launcher sweep that share a model reuse it instead of paying the start-up again. vLLM
itself is imported inside the functions that use it, so importing this module is cheap.
Callers reach the cache through the module (`vllm_engine.get_engine(...)`), which is also
where tests replace it with a scripted engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hotncold.config import ModelConfig
from hotncold.engine import kv_cache, model_facts, process_output
from hotncold.engine.embedded import prepare
from hotncold.engine.prompts import special_prefix
from hotncold.engine.requests import EngineStats, Generation, GenerationRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineKey:
    """Everything that makes two engines different; prompts and sampling are not in it, nor the
    KV cache size (a larger cache gives the same text: see `get_engine`)."""

    path: str
    dtype: str
    max_model_len: int
    gpu_memory_utilization: float
    enforce_eager: bool | None
    tensor_parallel_size: int
    trust_remote_code: bool
    engine_kwargs: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def of(cls, cfg: ModelConfig) -> EngineKey:
        return cls(
            path=cfg.path,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            enforce_eager=cfg.enforce_eager,
            tensor_parallel_size=cfg.tensor_parallel_size,
            trust_remote_code=cfg.trust_remote_code,
            engine_kwargs=tuple(sorted((k, repr(v)) for k, v in cfg.engine_kwargs.items())),
        )


_ENGINES: dict[EngineKey, VLLMEngine] = {}
_LOCK = threading.Lock()


def get_engine(cfg: ModelConfig) -> VLLMEngine:
    """The process-wide engine for these weights and settings, started on first use.

    An engine whose CPU KV cache is at least the one asked for is reused: the cache size changes
    how fast a batch runs, never what it samples. One with a smaller cache is shut down and
    started again with the larger one, once, rather than running every later batch preempted
    (a sweep over n=4,16 on the CPU restarts at most once). One whose engine core died (an
    earlier job's `EngineDeadError`: killed, out of memory) is replaced, so one crash costs the
    job it happened in and not every later job of the sweep.
    """
    key = EngineKey.of(cfg)
    wanted = cpu_kv_cache_gib(cfg)
    with _LOCK:
        cached = _ENGINES.get(key)
        if has_engine(cfg):
            log.info("reusing the loaded engine for %s", cfg.path)
            return _ENGINES[key]
        if cached is not None and cached.dead:
            log.warning(
                "vLLM's engine core for %s died in an earlier job; starting it again", cfg.path
            )
            del _ENGINES[key]
            cached.close()
        elif cached is not None:
            log.info(
                "restarting the engine for %s with a %g GiB KV cache (it had %g GiB)",
                cfg.path,
                wanted,
                cached.cpu_kv_cache_gib,
            )
            del _ENGINES[key]
            cached.close()
        _ENGINES[key] = VLLMEngine(cfg)
        return _ENGINES[key]


def has_engine(cfg: ModelConfig) -> bool:
    """`get_engine(cfg)` would return a loaded engine rather than start one."""
    cached = _ENGINES.get(EngineKey.of(cfg))
    return (
        cached is not None and not cached.dead and cached.cpu_kv_cache_gib >= cpu_kv_cache_gib(cfg)
    )


def cpu_kv_cache_gib(cfg: ModelConfig) -> float:
    """The KV cache a CPU engine for `cfg` reserves (GPU engines ignore it)."""
    return kv_cache.DEFAULT_GIB if cfg.cpu_kv_cache_gib is None else cfg.cpu_kv_cache_gib


def sized_for(
    cfg: ModelConfig, batch: kv_cache.Batch, beside_bytes: int = 0
) -> tuple[ModelConfig, kv_cache.KVPlan | None]:
    """`cfg` with the CPU KV cache sized for `batch` when it is unset (null), and the plan.

    On GPUs, or with `cpu_kv_cache_gib` set, or for a model whose config.json hotncold cannot
    read the shapes of, `cfg` comes back unchanged with no plan.
    """
    if cfg.cpu_kv_cache_gib is not None or not on_cpu():
        return cfg, None
    config = model_facts.read_config(resolve_model_path(cfg.path))
    dtype = "float32" if cfg.dtype == "auto" else cfg.dtype
    per_token = model_facts.kv_bytes_per_token(config, dtype) if config else None
    params = model_facts.parameter_count(config) if config else None
    if per_token is None or params is None:
        log.info(
            "cannot size the KV cache of %s from its config; using %g GiB",
            cfg.path,
            kv_cache.DEFAULT_GIB,
        )
        return dataclasses.replace(cfg, cpu_kv_cache_gib=kv_cache.DEFAULT_GIB), None
    chosen = kv_cache.plan(
        batch,
        cfg.max_tokens,
        per_token,
        available=kv_cache.available_bytes(),
        engine_bytes=model_facts.weight_bytes(params, dtype) + kv_cache.ENGINE_RUNTIME_BYTES,
        beside_bytes=beside_bytes,
        block=int(cfg.engine_kwargs.get("block_size", kv_cache.BLOCK_TOKENS_CPU)),
    )
    return dataclasses.replace(cfg, cpu_kv_cache_gib=chosen.gib), chosen


def close_engines() -> None:
    """Shut every cached engine down (tests; long-lived processes switching models)."""
    with _LOCK:
        for engine in _ENGINES.values():
            engine.close()
        _ENGINES.clear()


def close_engine(engine: VLLMEngine) -> None:
    """Shut one engine down and forget it (its memory is back for the next one)."""
    with _LOCK:
        for key, cached in list(_ENGINES.items()):
            if cached is engine:
                del _ENGINES[key]
    engine.close()


def resolve_model_path(path: str) -> str:
    if path.startswith("embedded:"):
        name = path.split(":", 1)[1]
        if name != "smollm2_135m":
            raise ValueError(f"unknown embedded model {name!r}; the packaged one is smollm2_135m")
        return str(prepare())
    return path


_IMPORTED = False


def _import_vllm() -> None:
    """Import vLLM once, its import-time output going to the logs (`process_output`)."""
    global _IMPORTED
    if _IMPORTED:
        return
    # INFO: run.log gets vLLM's start-up story (KV cache, weights, timings), the terminal none
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
    with process_output.captured():
        # vLLM configures its loggers, checks Triton and imports the engine: all of it prints
        from vllm import LLM  # noqa: F401
        from vllm.platforms import current_platform

        current_platform.is_cpu()
    process_output.route_vllm_loggers()
    _IMPORTED = True


def on_cpu() -> bool:
    _import_vllm()
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _configure_cpu(cfg: ModelConfig) -> dict[str, Any]:
    # Measured here (NOTES.md): binding all cores is about 2.5x faster than vLLM's default of
    # reserving one, and the default KV reservation fails on these NUMA nodes.
    cores = sorted(os.sched_getaffinity(0))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"{cores[0]}-{cores[-1]}")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    # The KV size goes in as bytes, not VLLM_CPU_KVCACHE_SPACE: that variable takes whole GiB
    # only, and as process state it would also resize every later engine (a PRM beside the
    # generator wants its own, smaller cache).
    os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
    return {
        "kv_cache_memory_bytes": int(cpu_kv_cache_gib(cfg) * kv_cache.GIB),
        # The prefix cache reuses whole blocks only. With the CPU backend's default of 128
        # tokens, a step search's next-step prompts (and Best-of-N's samples of one prompt)
        # compute again up to 127 tokens each that the cache holds; 32 is the smallest block
        # the CPU attention kernels take. Measured here (`make bench ARGS=search`), the same
        # tokens generated: Best-of-N 1.39x, beam search 1.86x, DVTS 1.69x faster than with
        # 128. `model.engine_kwargs.block_size` still overrides it.
        "block_size": kv_cache.BLOCK_TOKENS_CPU,
    }


@contextlib.contextmanager
def _preemption_signal_blocked() -> Iterator[None]:
    """Block the scheduler's preemption signal in this thread while vLLM starts its processes.

    Slurm delivers a job's signals (`--signal=USR2@<s>`, which submitit asks for before the time
    limit, or `scancel --signal=USR2`) to every process of the job step. vLLM's engine core and
    workers leave SIGUSR2 at its default action: unprotected, they die at once, before this
    process's handler (submitit's, which requeues the job) has even run, and the engine is dead
    in the handler's hands. A child inherits the signal mask of the thread that starts it, so
    these never see the signal. Blocking rather than ignoring keeps a signal that arrives during
    start-up pending here, delivered when the mask is restored. (A process group of their own
    would not help: slurmstepd signals each process of the step, whatever its group.)
    """
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")  # submitit's setting
    signum = getattr(signal, name, None)
    if signum is None:
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _counter_value(counter: Any) -> int:
    """A Prometheus counter's value through its public `collect()` (its `_total` sample)."""
    return int(
        sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )


class VLLMEngine:
    """`vllm.LLM` behind the Engine protocol; works with CUDA `vllm` and `vllm-cpu` alike."""

    def __init__(self, cfg: ModelConfig) -> None:
        _import_vllm()
        from vllm import LLM

        self.stats = EngineStats()
        self.cpu_kv_cache_gib = cpu_kv_cache_gib(cfg)
        self.path = resolve_model_path(cfg.path)
        cpu = on_cpu()
        kwargs: dict[str, Any] = {
            "model": self.path,
            "dtype": ("float32" if cpu else "auto") if cfg.dtype == "auto" else cfg.dtype,
            "max_model_len": cfg.max_model_len,
            "enable_prefix_caching": True,
            "enforce_eager": cpu if cfg.enforce_eager is None else cfg.enforce_eager,
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "trust_remote_code": cfg.trust_remote_code,
            "seed": 0,
            # per-step statistics: vLLM's metrics count generated tokens as they are sampled,
            # which moves a run's progress bar within an engine call (`generated_so_far`), and
            # its periodic throughput lines go to run.log
            "disable_log_stats": False,
        }
        if cpu:
            kwargs.update(_configure_cpu(cfg))
            # Per-request seeds crash the CPU engine once chunked prefill splits a prompt;
            # without chunking they work, and seeded requests make runs reproducible.
            kwargs["enable_chunked_prefill"] = False
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        kwargs.update(cfg.engine_kwargs)
        self.runner = kwargs.get("runner", "generate")
        if isinstance(kwargs.get("pooler_config"), dict):
            from vllm.config import PoolerConfig

            kwargs["pooler_config"] = PoolerConfig(**kwargs["pooler_config"])
        log.info("starting vLLM on %s (%s, %s)", self.path, "cpu" if cpu else "gpu", self.runner)
        # the engine's processes inherit the signal mask, and stdout and stderr: a pipe into
        # the logs unless verbose (process_output)
        with _preemption_signal_blocked(), process_output.captured():
            self.llm = LLM(**kwargs)
        process_output.route_vllm_loggers()  # LLM() configures vLLM's loggers again
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = cfg.max_model_len
        self._generation_counter = None if kwargs["disable_log_stats"] else self._own_counter()
        self._call_started_at: int | None = None
        """vLLM's generated-token counter when the call in flight began (None between calls;
        streaming: from the first submit while none was in flight to the poll that ends the
        last)."""
        self._base_tokens = 0
        """`stats.generated_tokens` at that moment."""
        self._open: dict[int, _Open] = {}
        """Streamed requests in flight, by ticket (`submit`)."""
        self._ready: list[tuple[int, list[Generation]]] = []
        """Streamed requests answered without vLLM (a full context), for the next `poll`."""
        self._tickets = 0
        self.dead = False
        """vLLM's engine core died under a call (EngineDeadError): `get_engine` replaces it."""

    def generated_so_far(self) -> int:
        """Tokens this engine has generated, those of the `generate` call in flight included:
        read from this engine's own vLLM token counter, so another thread (a progress bar) sees
        them grow while the call runs. Without statistics (turned off, or a vLLM whose counter
        is not where `_own_generation_counter` looks) it counts finished calls only."""
        started = self._call_started_at
        if started is None:
            return self.stats.generated_tokens
        now = self._token_counter()
        counted = self._base_tokens + (0 if now is None else max(0, now - started))
        return max(counted, self.stats.generated_tokens)  # streamed requests count as they end

    @contextlib.contextmanager
    def _engine_call(self) -> Iterator[None]:
        """A call into vLLM; if its engine core has died, the engine is marked `dead`."""
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            yield
        except EngineDeadError:
            self.dead = True
            raise

    def _own_counter(self) -> Any | None:
        """This engine's `vllm:generation_tokens` counter (the Prometheus child of engine 0).

        Not `LLM.get_metrics()`: that reads Prometheus' global registry, and every engine started
        with statistics unregisters the metrics of those before it (PrometheusStatLogger's
        __init__), so once a second engine starts in the process (a judge PRM, a re-sized
        generator, the next engine of a test session) the first one's bar would stop moving
        within a call. The counter object itself goes on counting, so the engine holds it.
        Where it lives is checked against the supported releases (tools/vllm_contract)."""
        from vllm.v1.metrics.loggers import PrometheusStatLogger

        manager = self.llm.llm_engine.logger_manager
        for stat_logger in [] if manager is None else manager.stat_loggers:
            if isinstance(stat_logger, PrometheusStatLogger):
                return stat_logger.counter_generation_tokens.get(0)
        log.info("no vLLM token counter: progress moves once per engine call")
        return None

    def _token_counter(self) -> int | None:
        if self.llm is None or self._generation_counter is None:
            return None
        return _counter_value(self._generation_counter)

    def format_chat(
        self,
        messages: list[dict[str, str]],
        chat_template: str | None = None,
        date_string: str | None = None,
        add_special_tokens: bool = False,
    ) -> str:
        variables = {} if date_string is None else {"date_string": date_string}
        text = self.tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=True,
            chat_template=chat_template,
            **variables,
        )
        return special_prefix(self.tokenizer) + text if add_special_tokens else text

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
        from vllm import TokensPrompt

        if not requests:
            return []
        self._check_idle()
        encoded, params = self._prepared(requests)
        prompts = [
            TokensPrompt(prompt_token_ids=ids)
            for ids, ps in zip(encoded, params)
            for _ in ps  # one vLLM request per sample (`_prepared`)
        ]
        started = time.perf_counter()
        self._call_started_at = self._token_counter()
        self._base_tokens = self.stats.generated_tokens
        try:
            flat = [p for ps in params for p in ps]
            with self._engine_call():
                outputs = iter(self.llm.generate(prompts, flat, use_tqdm=False) if prompts else [])
        finally:
            self._call_started_at = None
        self.stats.seconds += time.perf_counter() - started
        results = []
        for request, ids, ps in zip(requests, encoded, params):
            if not ps:  # the prompt fills the context
                results.append([Generation("", 0, "length") for _ in range(request.n)])
                continue
            results.append([_generation(self, request, len(ids), next(outputs)) for _ in ps])
        self.stats.calls += 1
        self.stats.requests += len(requests)
        return results

    def _prepared(self, requests: Sequence[GenerationRequest]) -> tuple[list[list[int]], list]:
        """Each request's prompt token ids and its samples' SamplingParams (none for a prompt
        that already fills the context: it gets empty `length` generations instead of a vLLM
        error, as a long step-by-step search can)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        # Tokenize here without special tokens: chat templates already write the BOS token,
        # and letting the engine add another would shift every model that has one.
        encoded = self.tokenizer([r.prompt for r in requests], add_special_tokens=False)
        params = []
        for request, ids in zip(requests, encoded["input_ids"]):
            room = self.max_model_len - len(ids)
            # One vLLM request per sample, seeded as vLLM seeds the samples of an n-sample
            # request (seed + i, vllm/v1/engine/parallel_sampling.py): the same samples, and
            # each one reports its own prefix-cache hits, which compute accounting needs (an
            # n-sample request reports one sample's only, though each computes its prompt's
            # uncached part).
            params.append(
                [
                    SamplingParams(
                        n=1,
                        temperature=request.temperature,
                        top_p=request.top_p,
                        max_tokens=max(1, min(request.max_tokens, room)),
                        seed=None if request.seed is None else request.seed + i,
                        stop=list(request.stop) or None,
                        include_stop_str_in_output=True,
                        logprobs=0 if request.logprobs else None,
                        # one output per request, when it is finished (LLM.generate asks the
                        # same; streaming's step() would otherwise return one every step)
                        output_kind=RequestOutputKind.FINAL_ONLY,
                    )
                    for i in range(request.n if room > 0 else 0)
                ]
            )
        return encoded["input_ids"], params

    # Streaming (`StreamingEngine`): requests go to vLLM's engine as they come
    # (`LLMEngine.add_request`), and `poll` steps it (`LLMEngine.step`), so requests added
    # between steps join the running batch (continuous batching).

    def submit(self, requests: Sequence[GenerationRequest]) -> list[int]:
        from vllm import TokensPrompt

        if not requests:
            return []
        if not self._open and self._call_started_at is None:
            self._call_started_at = self._token_counter()
            self._base_tokens = self.stats.generated_tokens
        encoded, params = self._prepared(requests)
        tickets = []
        for request, ids, ps in zip(requests, encoded, params):
            self._tickets += 1
            tickets.append(self._tickets)
            if not ps:  # the prompt fills the context
                self._ready.append(
                    (self._tickets, [Generation("", 0, "length") for _ in range(request.n)])
                )
                continue
            self._open[self._tickets] = _Open(request, len(ids), [None] * len(ps))
            with self._engine_call():
                for i, p in enumerate(ps):
                    self.llm.llm_engine.add_request(
                        f"hnc-{self._tickets}-{i}", TokensPrompt(prompt_token_ids=ids), p
                    )
        self.stats.calls += 1
        self.stats.requests += len(requests)
        return tickets

    def poll(self) -> list[tuple[int, list[Generation]]]:
        ready, self._ready = self._ready, []
        started = time.perf_counter()
        while self._open and not ready:
            with self._engine_call():
                outputs = self.llm.llm_engine.step()
            for output in outputs:
                if not output.finished:
                    continue
                _, ticket, i = output.request_id.split("-")
                entry = self._open[int(ticket)]
                entry.outputs[int(i)] = output
                if all(o is not None for o in entry.outputs):
                    del self._open[int(ticket)]
                    ready.append(
                        (
                            int(ticket),
                            [
                                _generation(self, entry.request, entry.prompt_tokens, o)
                                for o in entry.outputs
                            ],
                        )
                    )
        self.stats.seconds += time.perf_counter() - started
        if not self._open:
            self._call_started_at = None
        return ready

    def abort(self) -> None:
        ids = [f"hnc-{t}-{i}" for t, entry in self._open.items() for i in range(len(entry.outputs))]
        if ids:
            with self._engine_call():
                self.llm.llm_engine.abort_request(ids)
        self._open.clear()
        self._ready = []
        self._call_started_at = None

    def _check_idle(self) -> None:
        """`LLM.generate` and the scoring calls step the same engine and would take the
        streamed requests' outputs: refused while any is in flight."""
        if self._open:
            raise RuntimeError(
                f"{len(self._open)} streamed requests are in flight: finish them (poll) before "
                "calling generate or scoring on this engine"
            )

    # Scoring: what PRMs read from an engine. None of it counts in `stats`, which describes
    # generation (a PRM on the generator's engine keeps its own counts). Each method returns,
    # for every prompt, its results and the prompt tokens the engine computed: the prompt
    # length minus the tokens it found in the prefix cache.

    def label_logprobs(
        self, prompts: Sequence[Sequence[int]], labels: Sequence[int], use_cache: bool = True
    ) -> list[tuple[list[float], int]]:
        """Log-probabilities of the `labels` token ids as the next token after each prompt."""
        self._check_idle()
        from vllm import SamplingParams, TokensPrompt

        if not prompts:
            return []
        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprob_token_ids=list(labels),
            detokenize=False,
            skip_reading_prefix_cache=not use_cache,
        )
        with self._engine_call():
            outputs = self.llm.generate(
                [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False
            )
        results = []
        for prompt, output in zip(prompts, outputs):
            step = output.outputs[0].logprobs[0]
            results.append(
                ([step[t].logprob for t in labels], len(prompt) - (output.num_cached_tokens or 0))
            )
        return results

    def _token_ends(self, sample: Any) -> list[int]:
        """Each sampled token's end in the sample's text (`token_ends` over the tokens'
        decoded pieces); where the pieces do not spell the text, from decoding every prefix
        of the tokens (slower; exact up to characters split across tokens)."""
        steps = sample.logprobs or []
        pieces = [step[token].decoded_token or "" for token, step in zip(sample.token_ids, steps)]
        ends = token_ends(pieces, sample.text)
        if ends is None:
            ids = list(sample.token_ids)
            ends = [
                min(
                    len(self.tokenizer.decode(ids[: k + 1], skip_special_tokens=True)),
                    len(sample.text),
                )
                for k in range(len(ids))
            ]
        return ends

    def prompt_logprobs(
        self, prompts: Sequence[Sequence[int]], first: Sequence[int], use_cache: bool = True
    ) -> list[tuple[list[float], int]]:
        """Log-probability of each prompt token from position `first[i]` on, given the rest."""
        self._check_idle()
        from vllm import SamplingParams, TokensPrompt

        def run(indices: list[int], read_cache: bool) -> list[Any]:
            params = SamplingParams(
                max_tokens=1,
                temperature=0.0,
                prompt_logprobs=0,
                detokenize=False,
                skip_reading_prefix_cache=not read_cache,
            )
            with self._engine_call():
                return self.llm.generate(
                    [TokensPrompt(prompt_token_ids=list(prompts[i])) for i in indices],
                    params,
                    use_tqdm=False,
                )

        results: list[tuple[list[float], int] | None] = [None] * len(prompts)
        todo = list(range(len(prompts)))
        # vLLM computes prompt log-probabilities only for the tokens it does not take from the
        # prefix cache, so it skips the cache for them by default. Reading it here is exact as
        # long as every row we use was computed: the row of token p needs the logits at p-1,
        # so p must lie past the cached prefix. A prompt whose cached prefix reaches into the
        # wanted rows is run again uncached.
        for read_cache in (use_cache, False) if use_cache else (False,):
            again = []
            for index, output in zip(todo, run(todo, read_cache) if todo else []):
                cached = output.num_cached_tokens or 0
                if read_cache and first[index] <= cached:
                    again.append(index)
                    continue
                ids = prompts[index]
                values = prompt_token_logprobs(ids, output.prompt_logprobs, first[index], cached)
                results[index] = (values, len(ids) - cached)
            todo = again
        return results  # type: ignore[return-value]

    def token_outputs(
        self, prompts: Sequence[Sequence[int]], first: Sequence[int], use_cache: bool = True
    ) -> list[tuple[Any, int]]:
        """Pooling engines: the per-token head outputs (raw logits) from position `first[i]` on.

        Returns a float tensor of shape (len - first, num_labels) per prompt.
        """
        self._check_idle()
        from vllm import PoolingParams, TokensPrompt

        def run(indices: list[int], read_cache: bool) -> list[Any]:
            with self._engine_call():
                return self.llm.encode(
                    [TokensPrompt(prompt_token_ids=list(prompts[i])) for i in indices],
                    pooling_task="token_classify",
                    pooling_params=PoolingParams(skip_reading_prefix_cache=not read_cache),
                    use_tqdm=False,
                )

        results: list[tuple[Any, int] | None] = [None] * len(prompts)
        todo = list(range(len(prompts)))
        # Token-level pooling skips the prefix cache by default because cached tokens get no
        # output rows; the rows that do come back are those of the last len - cached tokens.
        # Reading the cache is exact when every wanted position lies past the cached prefix.
        for read_cache in (use_cache, False) if use_cache else (False,):
            again = []
            for index, output in zip(todo, run(todo, read_cache) if todo else []):
                data = output.outputs.data
                start = len(prompts[index]) - data.shape[0]
                if first[index] < start:
                    again.append(index)
                    continue
                results[index] = (data[first[index] - start :].float(), data.shape[0])
            todo = again
        return results  # type: ignore[return-value]

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix (comparisons with full re-reading)."""
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None and hasattr(llm, "llm_engine"):
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception as error:  # shutting down twice or mid-teardown is harmless
                log.debug("engine shutdown: %s", error)
        self.llm = None


def _generation(
    engine: VLLMEngine, request: GenerationRequest, prompt_tokens: int, output: Any
) -> Generation:
    """One finished sample (a vLLM RequestOutput of n=1) as a Generation, charged to its
    request's account in `engine.stats`. (A module function, not a method: the vLLM contract's
    code scan follows the output's type into it.)"""
    sample = output.outputs[0]
    engine.stats.charge(
        request.account, prompt_tokens, output.num_cached_tokens or 0, len(sample.token_ids)
    )
    engine.stats.sequences += 1
    return Generation(
        text=sample.text,
        num_tokens=len(sample.token_ids),
        finish_reason="length" if sample.finish_reason == "length" else "stop",
        stop_reason=sample.stop_reason if isinstance(sample.stop_reason, str) else None,
        token_logprobs=_sampled_logprobs(sample) if request.logprobs else None,
        token_ends=engine._token_ends(sample) if request.logprobs else None,
        overrun=_overrun(engine, sample) if isinstance(sample.stop_reason, str) else "",
    )


def _overrun(engine: VLLMEngine, sample: Any) -> str:
    """The rest of the last token after the stop string that cut the text inside it: the
    sample's tokens decoded whole, past its text ("" where they do not extend it)."""
    whole = engine.tokenizer.decode(list(sample.token_ids), skip_special_tokens=True)
    return whole[len(sample.text) :] if whole.startswith(sample.text) else ""


@dataclass
class _Open:
    """A streamed request in flight: its samples' outputs as they finish."""

    request: GenerationRequest
    prompt_tokens: int
    outputs: list[Any]


def prompt_token_logprobs(
    ids: Sequence[int], rows: Sequence[Any], first: int, cached: int
) -> list[float]:
    """The log-probability of each prompt token ids[first:], from `RequestOutput.prompt_logprobs`.

    The rows are indexed relative to what the engine returned, not by absolute position: vLLM's
    V1 model runner (vllm-cpu; CUDA vLLM up to 0.24 for most models) returns one row per prompt
    token, `[None, row(1), ..., row(L-1)]`, whose rows 1..cached hold uninitialised memory; the
    V2 runner (CUDA's default from 0.25, every model from 0.29) returns rows only from the
    first uncached token, `[None, row(c+1), ..., row(L-1)]`, L - c long. In both, the row of
    token p is `rows[p - offset]` with offset = L - len(rows), valid for p > cached.
    """
    offset = len(ids) - len(rows)
    if first <= max(cached, offset):
        raise ValueError(
            f"prompt log-probabilities from token {first} asked for, but the engine computed "
            f"them only past token {max(cached, offset)} ({len(rows)} rows for {len(ids)} "
            f"tokens, {cached} cached)"
        )
    return [rows[p - offset][ids[p]].logprob for p in range(first, len(ids))]


def token_ends(pieces: Sequence[str], text: str) -> list[int] | None:
    """Where each token ends in `text`, from the tokens' own decoded pieces; None when the
    pieces do not spell `text` (a character split across tokens decodes as a replacement
    character), clamped where a stop string ended the text inside a token."""
    ends, at = [], 0
    for piece in pieces:
        at += len(piece)
        ends.append(min(at, len(text)))
    return ends if "".join(pieces)[: len(text)] == text else None


def _sampled_logprobs(sample: Any) -> list[float]:
    if not sample.logprobs:
        return []
    return [step[token].logprob for token, step in zip(sample.token_ids, sample.logprobs)]
