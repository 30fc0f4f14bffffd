"""Final-answer extraction and equivalence, on math-verify (sympy underneath).

`grade(text, gold)` is the one-call API. `Grader` is what a run uses: it parses each distinct
answer once, caches correctness verdicts (one-way, gold first) apart from the symmetric checks
that group equivalent answers for majority and weighted voting, so whether an answer is correct
depends on that answer and the gold answer alone. Every parse and comparison is time-bounded:
math-verify's own signal timeouts on the main thread, a forked child process elsewhere (signals
only work on the main thread), so a pathological expression costs seconds, never a hung or
crashed run.
"""

from __future__ import annotations

import cmath
import contextlib
import hashlib
import logging
import multiprocessing
import re
import signal
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT_S = 3
MAX_ANSWER_CHARS = 300  # longer "answers" are rambling text; sympy on them only burns time

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_PHRASE = re.compile(
    r"(?:final answer|answer)\s*(?:is|:)\s*:?\s*(.+?)(?:\.?\s*I hope it is correct|\n|$)",
    re.IGNORECASE,
)
_HASHES = re.compile(r"####\s*(.+?)\s*(?:\n|$)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?")


def extract_answer(text: str) -> str | None:
    """The final answer of a completion, or None.

    Priority: the last `\\boxed{...}` (balanced braces), then the last "answer is X" phrase,
    then the last `#### X`, then the last number in the text.
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        return _clean(boxed) or None
    for pattern in (_ANSWER_PHRASE, _HASHES):
        for phrase in reversed(pattern.findall(text)):
            answer = _from_phrase(phrase)
            if answer:
                return answer
    numbers = _NUMBER.findall(text)
    return _clean(numbers[-1]) if numbers else None


def _last_boxed(text: str) -> str | None:
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    start = matches[-1].end()
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return None  # unbalanced: the completion was cut off inside the box


def _from_phrase(phrase: str) -> str | None:
    """The answer inside "the answer is ...": its math part, a leading number, or a short text."""
    inner = _last_boxed(phrase)
    if inner is not None:
        return _clean(inner) or None
    math = re.search(r"\$([^$]+)\$", phrase)
    if math:
        return _clean(math.group(1)) or None
    number = re.match(r"\s*(-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?)", phrase)
    if number:
        return _clean(number.group(1))
    phrase = _clean(phrase)
    return phrase if 0 < len(phrase) <= 24 else None


def _clean(answer: str) -> str:
    answer = answer.strip().strip("$").strip()
    answer = re.sub(r"\\[\[\]()]", "", answer).strip()  # \[ \] \( \) math delimiters
    answer = answer.rstrip(".").strip()
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", answer):  # 1,000 -> 1000
        answer = answer.replace(",", "")
    return answer


def normalize(answer: str) -> str:
    """A cheap canonical string: equal strings mean equal answers (the converse needs sympy)."""
    answer = re.sub(r"\\(?:left|right|!|,|;|:|displaystyle)", "", answer)
    answer = re.sub(r"\\[dt]frac", r"\\frac", answer)
    answer = re.sub(r"\\text\{\s*([^{}]*)\}", r"\1", answer)
    answer = re.sub(r"\s+", "", answer)
    return answer.rstrip(".")


def grade(completion_text: str, gold_answer: str) -> bool:
    """True when the completion's final answer is mathematically equal to the gold answer."""
    answer = extract_answer(completion_text)
    if answer is None:
        return False
    return Grader().is_correct(answer, gold_answer)


class Grader:
    """Time-bounded equivalence checks over extracted answers, with two separate caches.

    - `is_correct(answer, gold)` is math-verify's one-way check, gold first (it is asymmetric:
      `x<2` is not a correct answer to `(-\\infty,2)`, the other way round it is). Its verdict is
      a function of the two strings alone, cached by (gold, answer).
    - `cluster(answers)` groups answers for voting with the symmetric check (either direction
      counts), cached separately, so clustering can never change a correctness verdict.

    Each distinct answer is parsed once (the parse is most of math-verify's cost) and the parsed
    form is reused by every comparison it takes part in.
    """

    def __init__(self, timeout_s: int = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._parsed: dict[str, list] = {}
        self._correct: dict[tuple[str, str], bool] = {}
        self._same: dict[tuple[str, str], bool] = {}
        self._forms: dict[str, _Form] = {}

    def is_correct(self, answer: str | None, gold: str) -> bool:
        if answer is None:
            return False
        key = (normalize(gold), normalize(answer))
        if key not in self._correct:
            self._correct[key] = key[0] == key[1] or self._verify(gold, answer)
        return self._correct[key]

    def cluster(self, answers: Sequence[str | None]) -> list[int]:
        """Group equivalent answers: one cluster id per answer, -1 for a missing answer.

        Identical normalized strings share a cluster at once. The distinct ones are then taken
        most frequent first (ties by text, so the partition depends on the answers, not on the
        order the completions came in) and each is compared with one representative per
        cluster found so far (its founding member): it joins every cluster it matches, merging
        them, or founds a new one. Every answer is checked, however many distinct answers there
        are; most comparisons are decided without math-verify (see `_decide`), so hundreds of
        distinct answers cluster in seconds.
        """
        keys = [normalize(a) if a is not None else None for a in answers]
        counts = Counter(k for k in keys if k is not None)
        originals: dict[str, str] = {}
        for a, k in zip(answers, keys):
            if k is not None:
                originals.setdefault(k, a)  # type: ignore[arg-type]
        distinct = sorted(counts, key=lambda k: (-counts[k], k))
        representative: list[str] = []  # the founding answer of each cluster
        parent: list[int] = []  # union-find over clusters: merged ones point at their target

        def find(c: int) -> int:
            while parent[c] != c:
                parent[c] = parent[parent[c]]
                c = parent[c]
            return c

        cluster_of: dict[str, int] = {}
        for key in distinct:
            found = [
                c
                for c in range(len(representative))
                if parent[c] == c and self._equal(originals[key], originals[representative[c]])
            ]
            if found:
                target = found[0]
                for other in found[1:]:  # the new answer links clusters: merge them
                    parent[other] = target
            else:
                target = len(representative)
                representative.append(key)
                parent.append(target)
            cluster_of[key] = target
        return [find(cluster_of[k]) if k is not None else -1 for k in keys]

    def _equal(self, a: str, b: str) -> bool:
        """The symmetric check: a equals b if math-verify says so in either direction.

        Decided without math-verify where its answer is known from cheap facts (`_decide`)."""
        key = (normalize(a), normalize(b)) if a <= b else (normalize(b), normalize(a))
        if key not in self._same:
            decided = _decide(self._form(a), self._form(b))
            if decided is None:
                decided = self._verify(a, b) or self._verify(b, a)
            self._same[key] = decided
        return self._same[key]

    # Off the main thread the work runs in a child process, and parsed expressions never come
    # back from it: unpickling a sympy expression rebuilds it, evaluating it again in this
    # process, unbounded (a parsed 2^{2^{2^{2^{100}}}} would hang the caller). The child parses
    # and decides; only plain values (a verdict, a _Form) cross.

    def _form(self, answer: str) -> _Form:
        key = normalize(answer)
        if key not in self._forms:
            if _on_main_thread():
                self._forms[key] = _form_of(self._parse(answer), self.timeout_s)
            else:
                self._forms[key] = _bounded(
                    _form_of_text, (answer,), self.timeout_s, default=_Form(None, ())
                )
        return self._forms[key]

    def _parse(self, text: str) -> list:
        """The parse of `text`, cached (main thread only: see above)."""
        key = normalize(text)
        if key not in self._parsed:
            self._parsed[key] = _parse(text, self.timeout_s)
        return self._parsed[key]

    def _verify(self, gold: str, answer: str) -> bool:
        if len(answer) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
            return False
        if not _on_main_thread():
            return bool(_bounded(_verify_texts, (gold, answer), self.timeout_s, default=False))
        gold_parsed, answer_parsed = self._parse(gold), self._parse(answer)
        if not gold_parsed or not answer_parsed:
            return False
        return _verify(gold_parsed, answer_parsed, self.timeout_s)


@dataclass(frozen=True)
class _Form:
    """What decides most comparisons cheaply: numeric fingerprints and the parse's strings."""

    values: tuple[complex, ...] | None
    """The value of every sympy candidate of the parse at a fixed point (free symbols set to
    fixed values), when all of them are plain expressions (no relation, set, lone symbol or
    percent, all finite); else None."""
    strings: tuple[str, ...]
    """The parse's string candidates (stripped)."""
    sympy_candidates: int = 0
    intervals: bool = False
    """Every sympy candidate is an interval of positive length (`(1,3)`, `[0,\\infty)`)."""


def _decide(a: _Form, b: _Form) -> bool | None:
    """math-verify's symmetric verdict on two parsed answers when it follows from cheap facts,
    else None (ask math-verify).

    math-verify compares every pair of candidates: two strings are equal when identical, a
    string never equals a sympy candidate, and two plain expressions (neither a relation, a set
    nor a lone symbol, which it treats specially) are equal only if they agree numerically (to
    6 decimals) or symbolically, both of which imply equal values at any point where both are
    defined. So: a shared string means equal; an answer without sympy candidates equals only
    through strings; two plain expressions whose values at the fixed point differ by more than
    a relative 1e-5 are different. An interval of positive length never equals a plain
    expression (math-verify compares it with the expression's one-element set). (Checked
    against math-verify in tests/test_grading.py.)
    """
    if set(a.strings) & set(b.strings):
        return True
    if not a.sympy_candidates or not b.sympy_candidates:
        return False
    if (a.intervals and b.values is not None) or (b.intervals and a.values is not None):
        return False
    if a.values is None or b.values is None:
        return None
    for va in a.values:
        for vb in b.values:
            if abs(va - vb) <= 1e-5 * max(1.0, abs(va), abs(vb)):
                return None
    return False


def _form_of(parsed: list, timeout_s: int | None) -> _Form:
    sympy = _sympy()
    strings = tuple(str(c).strip() for c in parsed if isinstance(c, str) and str(c).strip())
    exprs = [c for c in parsed if not isinstance(c, str)]
    values: tuple[complex, ...] | None = None
    with _alarm(timeout_s):  # a timeout leaves `values` None: math-verify decides then
        found = [_fingerprint(sympy, expr) for expr in exprs]
        if all(v is not None for v in found):
            values = tuple(found)  # type: ignore[arg-type]
    intervals = bool(exprs) and all(
        isinstance(e, sympy.Interval) and bool(e.measure > 0) for e in exprs
    )
    return _Form(values, strings, len(exprs), intervals)


def _fingerprint(sympy: Any, expr: Any) -> complex | None:
    """The value of a plain expression at a fixed point, or None for anything else."""
    if (
        not isinstance(expr, sympy.Expr)
        or isinstance(expr, sympy.Symbol)
        or expr.has(sympy.UnevaluatedExpr)  # percentages: 9% equals 9 to math-verify
    ):
        return None
    point = {s: _point(s.name) for s in expr.free_symbols if isinstance(s, sympy.Symbol)}
    if len(point) != len(expr.free_symbols):
        return None
    try:
        value = complex(expr.subs(point).evalf(30))
    except (TypeError, ValueError, ArithmeticError, AttributeError):
        return None
    if not (cmath.isfinite(value)):
        return None
    return value


def _point(name: str) -> float:
    """A fixed, name-dependent value in [1.1, 2.4) substituted for a free symbol."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return 1.1 + 1.3 * int.from_bytes(digest, "big") / 2**64


@contextlib.contextmanager
def _alarm(timeout_s: int | None) -> Iterator[None]:
    """A SIGALRM bound on the main thread (elsewhere `_bounded`'s child process is the bound)."""
    if not timeout_s or threading.current_thread() is not threading.main_thread():
        yield
        return

    def late(signum: int, frame: Any) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, late)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    except TimeoutError:
        log.debug("fingerprinting an answer timed out")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _sympy() -> Any:
    import sympy

    return sympy


def _parse(text: str, timeout_s: int | None) -> list:
    if len(text) > MAX_ANSWER_CHARS:
        return []
    from math_verify import parse

    try:
        parsed = parse(f"${text}$", parsing_timeout=timeout_s)
        if not parsed:
            parsed = parse(text, parsing_timeout=timeout_s)
        return list(parsed)
    except Exception as error:  # math-verify and sympy raise many kinds; a failure parses nothing
        log.debug("parsing %r failed: %s", text, error)
        return []


def _verify(gold: list, answer: list, timeout_s: int | None) -> bool:
    from math_verify import verify

    try:
        return bool(verify(gold, answer, timeout_seconds=timeout_s))
    except Exception as error:  # a failure is "not equal"
        log.debug("verification of %r against %r failed: %s", answer, gold, error)
        return False


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _form_of_text(text: str, timeout_s: int | None) -> _Form:
    return _form_of(_parse(text, timeout_s), timeout_s)


def _verify_texts(gold: str, answer: str, timeout_s: int | None) -> bool:
    gold_parsed, answer_parsed = _parse(gold, timeout_s), _parse(answer, timeout_s)
    return bool(gold_parsed and answer_parsed) and _verify(gold_parsed, answer_parsed, timeout_s)


def _bounded(fn: Any, args: tuple, timeout_s: int, default: Any) -> Any:
    """`fn(*args, timeout_s)` bounded in time: math-verify's own signal timeouts on the main
    thread; elsewhere (signals only work there) in a forked child that is stopped when late."""
    if _on_main_thread():
        return fn(*args, timeout_s)
    import math_verify  # noqa: F401  (imported here, not in each child: seconds of its budget)

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
    child.start()
    send.close()
    try:
        if receive.poll(timeout_s):
            result = receive.recv()
        else:
            log.warning(
                "%s gave no answer in %s s: stopped, taken as %r", fn.__name__, timeout_s, default
            )
            result = default
    except EOFError:  # the child died without an answer
        result = default
    child.join(0.1)
    if child.is_alive():
        child.kill()
        child.join()
    return result


def _child(conn: Any, fn: Any, args: tuple) -> None:
    conn.send(fn(*args, None))
    conn.close()
