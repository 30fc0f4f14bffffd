"""The answer-aware stop: a sample ends right after its first complete `\\boxed{...}`.

A stop string cannot end a sample at the brace that balances a `\\boxed{`: the answer may hold
braces of its own (`\\boxed{\\frac{1}{2}}`). So a request with `answer_stop` is generated in
rounds, through the engine's ordinary `generate`:

1. with the extra stop string `ANSWER_OPENING` (`boxed{`, the substring search-and-learn's DVTS
   prunes a subtree at): a sample that writes no answer ends as it would have anyway (its
   samples are exactly those of the request without the stop);
2. a sample that stopped at the opening is continued, from its prompt and text so far, with the
   stop string `}` only, again and again while its braces are open (one round per closing
   brace a token ends in: `\\frac{1}{2}}` takes up to three), each round seeded from the
   request's seed, the sample and the round. It ends `answer` once they balance: its text ends
   right after the answer.

A stop string cuts the text inside the token it ends in (the token `{\\` is cut to `{`).
Continuing from the cut text would show the model a token split it never wrote, and change
the answer it writes next (measured: greedy SmolLM2 went from `\\frac{5}{2}` to `10`). So
every round continues from the whole token (`Generation.overrun`, the rest of it), and braces
are counted in it too: a token that closes the answer (`}}$.`) ends it right there.

What this saves is real: the tokens after the answer are never generated, not cut off
afterwards (only the rest of the token holding the closing brace is). What it costs: one
more engine call per brace level for the samples inside an answer, each reading its prompt
again from the prefix cache (only the text since the last full cache block is computed again),
and the answer's own tokens are sampled from other seeds than the uncut request would have
used. A box still open after `MAX_ROUNDS` rounds, or one the model ends (end of sequence, the
token limit) before it balances, ends as the model ended it.

Braces are counted as the grader counts them (`evaluation.grading`: every `{` and `}`, escaped
ones included), so the cut text's last box is the answer the grader reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence

from hotncold.engine.requests import (
    Engine,
    EngineStats,
    Generation,
    GenerationRequest,
    derive_seed,
)

ANSWER_OPENING = "boxed{"
"""Where an answer begins (search-and-learn's DVTS stops a subtree once its text holds it)."""
ANSWER_CLOSING = "}"
MAX_ROUNDS = 16
"""Closing rounds at most (nested braces in one answer); then the sample goes on as it would."""


def generate(engine: Engine, requests: Sequence[GenerationRequest]) -> list[list[Generation]]:
    """`engine.generate(requests)`, with every `answer_stop` request's samples ending right
    after their first complete `\\boxed{...}` (finish reason `answer`; see the module doc)."""
    rounds = generate_in_rounds(requests, engine.stats)
    try:
        sent = next(rounds)
        while True:
            sent = rounds.send(engine.generate(sent))
    except StopIteration as done:
        return done.value


Rounds = Generator[list[GenerationRequest], list[list[Generation]], list[list[Generation]]]


def generate_in_rounds(requests: Sequence[GenerationRequest], stats: EngineStats) -> Rounds:
    """`generate` as a generator: it yields each round's requests, is sent their generations,
    and returns the requests' generations (counted in `stats`). Schedulers that group many
    problems' rounds into their own engine calls drive it (`hotncold.search.schedule`)."""
    if not requests:
        return []
    if not any(r.answer_stop for r in requests):
        return (yield list(requests))
    first = [
        dataclasses.replace(r, stop=(*r.stop, ANSWER_OPENING)) if r.answer_stop else r
        for r in requests
    ]
    outputs = yield first
    # (request index, sample index, open braces) of every sample inside an answer; its text
    # holds the whole token the opening ended in (`Generation.overrun`): cut there, a
    # continuation would read the token split ("{" where the model wrote "{\\") and write
    # another answer
    inside = []
    for i, (r, samples) in enumerate(zip(requests, outputs)):
        for k, g in enumerate(samples):
            if r.answer_stop and g.stop_reason == ANSWER_OPENING:
                outputs[i][k], depth = _scanned(_opened(g), g.overrun, 1)
                if depth > 0:
                    inside.append((i, k, depth))
    for sample_round in range(MAX_ROUNDS + 1):
        for i, k, _ in inside:
            if not _room(requests[i], outputs[i][k]):  # inside the answer, no budget left
                outputs[i][k] = dataclasses.replace(
                    outputs[i][k], finish_reason="length", stop_reason=None
                )
        inside = [(i, k, depth) for i, k, depth in inside if _room(requests[i], outputs[i][k])]
        if not inside:
            break
        last = sample_round == MAX_ROUNDS  # still open: the rest as the request asked it
        more = [
            _continuation(requests[i], outputs[i][k], k, sample_round, last) for i, k, _ in inside
        ]
        still = []
        for (i, k, depth), (g,) in zip(inside, (yield more)):
            if last or g.stop_reason != ANSWER_CLOSING:  # ended as the model or budget ended it
                outputs[i][k] = _joined(outputs[i][k], g)
                continue
            head = _joined(outputs[i][k], dataclasses.replace(g, text=""))
            outputs[i][k], depth = _scanned(head, g.text + g.overrun, depth)
            if depth > 0:
                still.append((i, k, depth))
        inside = still
    for r, samples in zip(requests, outputs):
        for g in samples:
            if g.finish_reason == "answer":
                stats.answer_stops += 1
                stats.answer_stop_unspent += r.max_tokens - g.num_tokens
    return outputs


def _opened(g: Generation) -> Generation:
    """A sample stopped at the opening, its text not yet extended by the token's rest."""
    return dataclasses.replace(g, stop_reason=None, overrun="")


def _scanned(head: Generation, piece: str, depth: int) -> tuple[Generation, int]:
    """`head` extended by `piece` (text inside an answer with `depth` braces open): up to the
    brace that balances them, finished `answer`, or all of it, with the braces still open."""
    for at, char in enumerate(piece):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return _extended(head, piece[: at + 1], "answer"), 0
    return _extended(head, piece, head.finish_reason), depth


def _extended(g: Generation, more: str, finish: str) -> Generation:
    """`g` with `more` text of its own last token (the token ends move with the text)."""
    text = g.text + more
    ends = None if g.token_ends is None else [min(e, len(text)) for e in g.token_ends]
    if ends and more:
        ends[-1] = len(text)
    return dataclasses.replace(
        g, text=text, finish_reason=finish, stop_reason=None, overrun="", token_ends=ends
    )


def _room(request: GenerationRequest, sample: Generation) -> bool:
    return request.max_tokens - sample.num_tokens > 0


def _continuation(
    request: GenerationRequest, sample: Generation, k: int, sample_round: int, last: bool
) -> GenerationRequest:
    return dataclasses.replace(
        request,
        prompt=request.prompt + sample.text,
        max_tokens=request.max_tokens - sample.num_tokens,
        n=1,
        stop=request.stop if last else (ANSWER_CLOSING,),
        seed=None if request.seed is None else derive_seed(request.seed, k, "answer", sample_round),
        answer_stop=False,
    )


def _joined(head: Generation, tail: Generation) -> Generation:
    """`head` followed by `tail`, which continued it; the finish is `tail`'s."""
    logprobs = ends = None
    if head.token_logprobs is not None:
        logprobs = head.token_logprobs + (tail.token_logprobs or [])
        ends = (head.token_ends or []) + [len(head.text) + e for e in tail.token_ends or []]
    return Generation(
        text=head.text + tail.text,
        num_tokens=head.num_tokens + tail.num_tokens,
        finish_reason=tail.finish_reason,
        stop_reason=tail.stop_reason,
        token_logprobs=logprobs,
        token_ends=ends,
        overrun=tail.overrun,
    )
