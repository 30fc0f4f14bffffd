"""What beam search and DVTS share: partial solutions, one-step generation, lookahead, scoring.

A search grows `Node`s one step at a time. Every round of a search goes through three calls:

- `generate_steps`: one engine call generating one step (text up to `model.step_delimiter`,
  kept) for every candidate;
- `lookahead` (when `approach.lookahead` > 0): one greedy engine call per lookahead step;
- `score`: one PRM call for all candidates (the PRM's prefix cache scores only new steps).

Each has a `*_work` form, a generator that yields its engine rounds and PRM pairs instead of
calling anything (`hotncold.search.schedule`): beam search and DVTS run one problem's search
as such a generator, and the scheduler decides how the rounds of many problems share calls
(`barrier`: all problems' rounds batched together, as the plain functions do for the tasks
they get; `async`: each problem's as soon as it is ready).

Why a step can take a second engine call: with a one-character delimiter such as "\\n", a model
that writes a blank line between paragraphs returns a step that is only the delimiter (vLLM cuts
the "\\n\\n" token at its first "\\n"). Counting it as a step would rank the candidate by its
parent's score, which `min` and `prod` aggregation always prefer to a real new step; ending the
solution there would cut most solutions short. So such a blank chunk is kept in the text and
the same candidate is asked again, in one more engine call for just those candidates, up to
`BLANK_RETRIES` times; a candidate still blank then ends with `empty_step`.

A candidate that ends with `empty_step` added nothing, so it keeps its parent's score, which
`min` and `prod` prefer to any real new step. It is therefore **unfinished** (the model never
ended the solution: `finished` is false, so `finished_only` never returns or counts it) and
every ranking puts it after every candidate that added a step, whatever its score: it never
becomes DVTS's pick or a beam over a real step, and comes last in beam search's final pool.

Ties: every ranking here (`ranked`, `ranked_nodes`, `distinct`) breaks ties uniformly at
random with a generator seeded from the run seed, the problem, the depth and what is being
ranked (`tie_breaker`), never by position: candidate 0 of a parent is sampled at the first
temperature value, so "ties to the earlier candidate" would hand every tie (the rule under
`min` with a coarse PRM) to one temperature. Runs stay reproducible.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from hotncold.engine import answer_stop
from hotncold.engine.requests import Engine, EngineStats, Generation, GenerationRequest, derive_seed
from hotncold.prm.base import PRM, aggregate, split_steps
from hotncold.search import schedule
from hotncold.search.base import FINISHED, Completion, SearchContext

log = logging.getLogger(__name__)

BLANK_RETRIES = 2
"""Extra tries for a step that came back as nothing but the delimiter (see the module doc)."""


@dataclass(frozen=True)
class Node:
    """A partial (or, once `finish_reason` is set, complete) solution in a search tree."""

    text: str = ""
    """Generated text after the prompt; it ends with the delimiter while the node can grow."""
    steps: tuple[str, ...] = ()
    step_temperatures: tuple[float, ...] = ()
    """The temperature each step was sampled at."""
    step_scores: tuple[float, ...] = ()
    """PRM score of each step (set by `score`)."""
    num_tokens: int = 0
    """Tokens generated for this node's own text (its ancestors' steps included)."""
    sampled_at: tuple[float, ...] = ()
    """Every temperature that produced part of the text (blank chunks included)."""
    finish_reason: str | None = None
    """None while the node can grow (`partial` once output); else eos, answer, length or
    empty_step (`Completion.finish_reason`)."""
    depth: int = 0
    """Search iterations that produced this node (its number of generation rounds)."""
    token_logprobs: tuple[float, ...] = ()
    """With `Limits.logprobs`: the log-probability of every token of `text` as sampled."""
    token_ends: tuple[int, ...] = ()
    """Each of those tokens' end in `text`."""

    @property
    def live(self) -> bool:
        return self.finish_reason is None

    @property
    def finished(self) -> bool:
        return self.finish_reason in FINISHED

    @property
    def added_nothing(self) -> bool:
        """It ended with nothing but delimiters: no step of its own (ranked last)."""
        return self.finish_reason == "empty_step"

    def to_completion(self, group: int, **extra: object) -> Completion:
        temps = set(self.sampled_at)
        return Completion(
            text=self.text,
            steps=list(self.steps),
            step_scores=list(self.step_scores),
            step_temperatures=list(self.step_temperatures),
            num_tokens=self.num_tokens,
            finish_reason=self.finish_reason or "partial",
            temperature=temps.pop() if len(temps) == 1 else None,
            group=group,
            extra={"depth": self.depth, **extra},
            token_logprobs=list(self.token_logprobs) if self.token_logprobs else None,
            token_ends=list(self.token_ends) if self.token_logprobs else None,
        )


def fill(nodes: Sequence[Node], slots: int, finished_only: bool) -> list[tuple[Node, dict]]:
    """`slots` outputs from `nodes` (ranked: best first, ties already in random order), each
    with its extra fields.

    With `finished_only`, the finished nodes only, repeated in turn when fewer than `slots`
    (a copy's `copy_of` is the index of its original among the outputs), and the number of
    unfinished ones left out in `dropped_unfinished`; when none finished, the best `slots`
    nodes as they are. Else the best `slots` nodes as they are.
    """
    chosen, extra = list(nodes), {}
    if finished_only:
        done = [node for node in nodes if node.finished]
        if done:
            chosen, extra = done, {"dropped_unfinished": len(nodes) - len(done)}
    out = []
    for i in range(slots):
        more = dict(extra)
        if i >= len(chosen):
            more["copy_of"] = i % len(chosen)
        out.append((chosen[i % len(chosen)], more))
    return out


@dataclass(frozen=True)
class StepTask:
    """Generate the next step of `parent` for the problem whose chat prompt is `prompt`."""

    prompt: str
    parent: Node
    temperature: float
    seed: int
    final: bool = False
    """Generate to the end of the solution instead of one step."""
    account: str | None = None
    """Who pays for the engine's work on it (the problem's uid; `GenerationRequest.account`)."""


@dataclass
class Expansion:
    """The child a StepTask produced and what it cost."""

    node: Node
    tokens: int
    """Tokens generated for it in this round (its own step, blank retries included)."""
    lookahead_text: str = ""
    lookahead_steps: tuple[str, ...] = ()
    lookahead_tokens: int = 0
    selection_score: float = 0.0
    """What pruning ranks by: the aggregate of its steps' scores plus its lookahead steps'."""
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Limits:
    """What bounds a step: the delimiter, the per-solution token budget, sampling settings."""

    delimiter: str
    max_tokens: int
    top_p: float = 1.0
    logprobs: bool = False
    """Keep the sampled tokens' log-probabilities on the nodes (`output.logprobs`)."""
    answer_stop: bool = False
    """End a candidate right after its first complete `\\boxed{...}` (`approach.answer_stop`):
    it is finished (`answer`) and grows no further; its lookahead stops there too."""


def generate_steps(engine: Engine, tasks: Sequence[StepTask], limits: Limits) -> list[Expansion]:
    """One step (or, for final tasks, the rest of the solution) for every task.

    One engine call for all tasks, plus one per blank retry round when some steps came back
    blank (and per answer-stop round). Identical greedy requests are generated once: their
    outputs are identical anyway.
    """
    return schedule.drive(engine, None, generate_steps_work(tasks, limits, engine.stats))


def generate_steps_work(
    tasks: Sequence[StepTask], limits: Limits, stats: EngineStats
) -> schedule.Search[list[Expansion]]:
    """`generate_steps` as a search's work (`schedule`): each engine round is yielded."""
    texts = [""] * len(tasks)
    tokens = [0] * len(tasks)
    logprobs: list[list[float]] = [[] for _ in tasks]
    ends: list[list[int]] = [[] for _ in tasks]
    finish: list[str | None] = [None] * len(tasks)
    pending = list(range(len(tasks)))
    for attempt in range(1 + BLANK_RETRIES):
        if not pending:
            break
        requests = []
        for i in pending:
            task = tasks[i]
            requests.append(
                GenerationRequest(
                    prompt=task.prompt + task.parent.text + texts[i],
                    temperature=task.temperature,
                    max_tokens=limits.max_tokens - task.parent.num_tokens - tokens[i],
                    stop=() if task.final else (limits.delimiter,),
                    seed=task.seed if attempt == 0 else derive_seed(task.seed, "blank", attempt),
                    top_p=limits.top_p,
                    logprobs=limits.logprobs,
                    account=task.account,
                    answer_stop=limits.answer_stop,
                )
            )
        generations = yield from _deduplicated(requests, stats)
        still_blank = []
        for i, g in zip(pending, generations):
            if limits.logprobs:  # a blank retry's tokens stay: its text stays too
                logprobs[i] += g.token_logprobs or []
                ends[i] += [len(texts[i]) + e for e in g.token_ends or []]
            texts[i] += g.text
            tokens[i] += g.num_tokens
            if g.ended:
                finish[i] = "eos"
            elif g.finish_reason == "answer":
                finish[i] = "answer"  # complete: the answer ends the solution
            elif g.finish_reason == "length":
                finish[i] = "length"
            elif tasks[i].parent.num_tokens + tokens[i] >= limits.max_tokens:
                finish[i] = "length"  # stopped at a delimiter with no budget left to go on
            elif texts[i].strip():
                finish[i] = None  # a step, ended at the delimiter: the node can grow
            elif attempt < BLANK_RETRIES:
                still_blank.append(i)
            else:
                finish[i] = "empty_step"
        pending = still_blank
    return [
        Expansion(node=_child(task, text, n, reason, limits.delimiter, lp, e), tokens=n)
        for task, text, n, reason, lp, e in zip(tasks, texts, tokens, finish, logprobs, ends)
    ]


def _child(
    task: StepTask,
    text: str,
    tokens: int,
    finish: str | None,
    delimiter: str,
    logprobs: Sequence[float] = (),
    ends: Sequence[int] = (),
) -> Node:
    parent = task.parent
    # The parent's text ends with the delimiter, so its steps are a prefix of the child's.
    new_steps = split_steps(text, delimiter)
    return Node(
        text=parent.text + text,
        steps=parent.steps + tuple(new_steps),
        step_temperatures=parent.step_temperatures + (task.temperature,) * len(new_steps),
        step_scores=parent.step_scores,
        num_tokens=parent.num_tokens + tokens,
        sampled_at=(*parent.sampled_at, task.temperature),
        finish_reason=finish,
        depth=parent.depth + 1,
        token_logprobs=parent.token_logprobs + tuple(logprobs),
        token_ends=parent.token_ends + tuple(len(parent.text) + e for e in ends),
    )


def _deduplicated(
    requests: list[GenerationRequest], stats: EngineStats
) -> schedule.Search[list[Generation]]:
    unique: dict[object, int] = {}
    sent: list[GenerationRequest] = []
    index = []
    for r in requests:
        # (each problem pays for its own: identical prompts of two problems are two requests)
        key = (
            (r.prompt, r.max_tokens, r.stop, r.account, r.answer_stop)
            if r.temperature == 0
            else len(sent)
        )
        if key not in unique:
            unique[key] = len(sent)
            sent.append(r)
        index.append(unique[key])
    outputs = yield from answer_stop.generate_in_rounds(sent, stats)
    return [outputs[i][0] for i in index]


def lookahead(
    engine: Engine,
    tasks: Sequence[StepTask],
    expansions: Sequence[Expansion],
    steps: int,
    limits: Limits,
) -> None:
    """Extend each live expansion by up to `steps` greedy steps, kept apart from its node.

    One engine call per lookahead step (plus blank retries); a lookahead stops early at the
    end of the solution or of the token budget. The greedy text only feeds scoring.
    """
    schedule.drive(engine, None, lookahead_work(tasks, expansions, steps, limits, engine.stats))


def lookahead_work(
    tasks: Sequence[StepTask],
    expansions: Sequence[Expansion],
    steps: int,
    limits: Limits,
    stats: EngineStats,
) -> schedule.Search[None]:
    """`lookahead` as a search's work (`schedule`)."""
    todo = [i for i, e in enumerate(expansions) if e.node.live]
    for _ in range(steps):
        if not todo:
            return
        rollouts = []
        for i in todo:
            e = expansions[i]
            ghost = replace(
                e.node, text=e.node.text + e.lookahead_text, num_tokens=_spent(e), steps=()
            )
            rollouts.append(
                StepTask(
                    prompt=tasks[i].prompt,
                    parent=ghost,
                    temperature=0.0,
                    seed=0,
                    account=tasks[i].account,
                )
            )
        # greedy text that only feeds scoring: its log-probabilities are never kept
        results = yield from generate_steps_work(rollouts, replace(limits, logprobs=False), stats)
        next_todo = []
        for i, result in zip(todo, results):
            e = expansions[i]
            added = result.node.text[len(e.node.text) + len(e.lookahead_text) :]
            e.lookahead_text += added
            e.lookahead_steps += tuple(split_steps(added, limits.delimiter))
            e.lookahead_tokens += result.tokens
            if result.node.live:
                next_todo.append(i)
        todo = next_todo


def _spent(e: Expansion) -> int:
    return e.node.num_tokens + e.lookahead_tokens


def score(prm: PRM, problems: Sequence[str], expansions: Sequence[Expansion], agg: str) -> None:
    """One PRM call: each expansion's step scores and its selection score (lookahead included)."""
    schedule.drive(None, prm, score_work(problems, expansions, agg))


def score_work(
    problems: Sequence[str], expansions: Sequence[Expansion], agg: str
) -> schedule.Search[None]:
    """`score` as a search's work (`schedule`)."""
    pairs = [(p, e.node.steps + e.lookahead_steps) for p, e in zip(problems, expansions)]
    scores = yield schedule.Score(pairs)
    for e, s in zip(expansions, scores):
        e.node = replace(e.node, step_scores=tuple(s[: len(e.node.steps)]))
        e.selection_score = aggregate(s, agg)


def tie_breaker(*parts: object) -> random.Random:
    """The generator that orders ties of one ranking, seeded from what identifies it: (run
    seed, problem uid, approach, depth or "pool", what is ranked). The same run ranks the same."""
    return random.Random(derive_seed("ties", *parts))


def _score_key(score: float) -> float:
    # 12 significant digits: scores that differ only by floating-point noise (a mean or a
    # product of the same step scores summed in another order) tie
    return float(f"{score:.12g}")


def _order(items: Sequence, scores: Sequence[float], blank: Sequence[bool], rng: random.Random):
    draws = [rng.random() for _ in items]  # one per item in input order: reproducible
    keys = sorted(range(len(items)), key=lambda i: (blank[i], -_score_key(scores[i]), draws[i]))
    return [items[i] for i in keys]


def ranked(expansions: Sequence[Expansion], rng: random.Random) -> list[Expansion]:
    """Best selection score first; a candidate that added nothing after every other; ties in
    a uniformly random order drawn from `rng` (see the module doc)."""
    return _order(
        expansions,
        [e.selection_score for e in expansions],
        [e.node.added_nothing for e in expansions],
        rng,
    )


def ranked_nodes(nodes: Sequence[Node], agg: str, rng: random.Random) -> list[Node]:
    """Complete solutions by `aggregate(step_scores, agg)`, as `ranked` orders candidates."""
    return _order(
        nodes, [aggregate(n.step_scores, agg) for n in nodes], [n.added_nothing for n in nodes], rng
    )


def distinct(expansions: Sequence[Expansion], rng: random.Random) -> list[Expansion]:
    """One candidate per distinct text, in their original order; which of several identical
    ones stays is drawn uniformly from `rng` (identical text sampled at different
    temperatures: the survivor decides the temperature its steps are credited to)."""
    keep: dict[str, int] = {}
    for i in rng.sample(range(len(expansions)), len(expansions)):
        keep.setdefault(expansions[i].node.text, i)
    chosen = set(keep.values())
    return [e for i, e in enumerate(expansions) if i in chosen]


def iteration(
    ctx: SearchContext, tasks: Sequence[StepTask], problems: Sequence[str], final: bool
) -> list[Expansion]:
    """One search iteration for every live beam of every problem: one engine call for the
    steps (plus lookahead rollouts, used only for scoring), then one PRM call for all of them."""
    return schedule.drive(ctx.engine, ctx.prm, iteration_work(ctx, tasks, problems, final))


def iteration_work(
    ctx: SearchContext, tasks: Sequence[StepTask], problems: Sequence[str], final: bool
) -> schedule.Search[list[Expansion]]:
    """`iteration` as a search's work (`schedule`): what one problem's search yields for one
    iteration (the step rounds, the lookahead rounds, then one PRM call)."""
    model, a = ctx.model, ctx.approach
    limits = Limits(
        model.step_delimiter, model.max_tokens, model.top_p, ctx.logprobs, a.answer_stop
    )
    expansions = yield from generate_steps_work(tasks, limits, ctx.engine.stats)
    if a.lookahead and not final:
        yield from lookahead_work(tasks, expansions, a.lookahead, limits, ctx.engine.stats)
    yield from score_work(problems, expansions, ctx.agg_strategy)
    return expansions
