"""What search code and PRMs speak to a generator: requests, generations, counters, the protocol.

Search code sees plain `GenerationRequest`s and `Generation`s, never vLLM, so a scripted fake
engine (tests/fakes.py) can stand in for the real one (`hotncold.engine.vllm_engine`) in exact
algorithm tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class GenerationRequest:
    """Sample `n` continuations of one prompt."""

    prompt: str
    temperature: float
    max_tokens: int
    n: int = 1
    stop: tuple[str, ...] = ()
    """Stop strings; the matched one is kept at the end of the text."""
    seed: int | None = None
    """Per-request seed: the same request gives the same samples whatever the batch around it."""
    top_p: float = 1.0
    logprobs: bool = False
    """Return the log-probability of every sampled token."""
    account: str | None = None
    """Who pays for the request's compute (a search sets its problem's uid): the engine adds
    the tokens it computed for it to `stats.accounts[account]`."""
    answer_stop: bool = False
    """End each sample right after its first complete `\\boxed{...}` (finish reason `answer`).
    Engines do not read it: `hotncold.engine.answer_stop.generate` carries it out over any
    engine's `generate`."""


@dataclass
class Generation:
    """One sampled continuation."""

    text: str
    num_tokens: int
    finish_reason: str
    """`stop` (end of sequence or a stop string), `length` (hit max_tokens) or `answer` (an
    `answer_stop` request: the text ends right after its first complete `\\boxed{...}`)."""
    stop_reason: str | None = None
    """The stop string that ended it; None when it ended at the end-of-sequence token."""
    token_logprobs: list[float] | None = None
    """With `GenerationRequest.logprobs`: the log-probability of each sampled token, under the
    model's distribution before temperature (vLLM's raw log-probabilities)."""
    token_ends: list[int] | None = None
    """With `token_logprobs`: where each token ends in `text` (characters), so a token's span
    is [previous end, its end)."""
    overrun: str = ""
    """When a stop string ended `text` inside a token: the rest of that token's text, generated
    but not in `text` (the answer stop continues from the whole token)."""

    @property
    def ended(self) -> bool:
        """The model finished the answer (end-of-sequence), not a step or the length limit."""
        return self.finish_reason == "stop" and self.stop_reason is None


@dataclass
class Charge:
    """The tokens an engine computed for one account (see `GenerationRequest.account`)."""

    prompt_tokens: int = 0
    """Prompt tokens computed: every sample's prompt minus what the prefix cache held."""
    generated_tokens: int = 0
    """Tokens sampled."""

    def add(self, other: Charge) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.generated_tokens += other.generated_tokens


@dataclass
class EngineStats:
    calls: int = 0
    requests: int = 0
    sequences: int = 0
    prompt_tokens: int = 0
    """Prompt tokens of every sample, cached or not."""
    cached_prompt_tokens: int = 0
    """Of those, the ones the prefix cache held (not computed again)."""
    generated_tokens: int = 0
    seconds: float = 0.0
    answer_stops: int = 0
    """Samples the answer stop ended (`GenerationRequest.answer_stop`)."""
    answer_stop_unspent: int = 0
    """The token budget (`max_tokens`) those samples had left when it ended them: the most the
    stop saved them (what it saves in fact is measured by `make bench ARGS=search`)."""
    accounts: dict[str, Charge] = field(default_factory=dict)
    """What each account's requests computed since it was last taken (`take`)."""

    def charge(self, account: str | None, prompt_tokens: int, cached: int, generated: int) -> None:
        """Count one sample: its prompt length, how much of it was cached, what it generated."""
        self.prompt_tokens += prompt_tokens
        self.cached_prompt_tokens += cached
        self.generated_tokens += generated
        if account is not None:
            self.accounts.setdefault(account, Charge()).add(
                Charge(prompt_tokens - cached, generated)
            )

    def take(self, account: str) -> Charge:
        """What `account` computed since the last call (and forget it)."""
        return self.accounts.pop(account, None) or Charge()

    def snapshot(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "accounts"}


class Engine(Protocol):
    """What search code needs from a generator."""

    stats: EngineStats

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
        """All requests in one batch; for each request its `n` generations, in order."""
        ...

    def format_chat(
        self,
        messages: list[dict[str, str]],
        chat_template: str | None = None,
        date_string: str | None = None,
        add_special_tokens: bool = False,
    ) -> str:
        """The prompt text of a chat, ending where the assistant's answer begins: rendered by
        `chat_template` (None: the tokenizer's own) with `date_string` passed to it, and with
        `add_special_tokens` preceded by what the tokenizer adds to a text (its BOS token)."""
        ...

    def generated_so_far(self) -> int:
        """Tokens generated since the engine started, those of a call in flight included where
        the engine can tell (read from another thread: a run's progress bar)."""
        ...


@runtime_checkable
class StreamingEngine(Engine, Protocol):
    """An engine that also takes requests while others run (continuous batching): the step
    searches' `async` scheduler (`hotncold.search.schedule`) keeps its batch full with it.

    The samples of a request are the same whether it goes through `generate` or `submit`, and
    whatever else is in flight (each request carries its seed). `generate` must not be called
    while submitted requests are unfinished."""

    def submit(self, requests: Sequence[GenerationRequest]) -> list[int]:
        """Start generating `requests` now; one ticket per request, in order."""
        ...

    def poll(self) -> list[tuple[int, list[Generation]]]:
        """(ticket, its `n` generations) for requests that finished since the last call; waits
        until at least one has while any is in flight, returns [] at once when none is."""
        ...

    def abort(self) -> None:
        """Drop every submitted request not yet polled (a search that failed midway)."""
        ...


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (run seed, problem id, slot, depth)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1
