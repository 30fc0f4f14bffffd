"""Final-answer extraction and equivalence, on math-verify (sympy underneath).

`grade(text, gold)` is the one-call API. `Grader` is what a run uses: it parses each gold answer
once, caches verdicts per distinct answer, and groups equivalent answers for majority and
weighted voting. Every parse and comparison is time-bounded: math-verify's own signal timeouts
on the main thread, a forked child process elsewhere (signals only work on the main thread), so
a pathological expression costs seconds, never a hung or crashed run.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import threading
from collections.abc import Sequence
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
    """Caching, time-bounded equivalence checks over extracted answers."""

    def __init__(self, timeout_s: int = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._verdicts: dict[tuple[str, str], bool] = {}

    def is_correct(self, answer: str | None, gold: str) -> bool:
        if answer is None:
            return False
        key = (normalize(gold), normalize(answer))
        if key not in self._verdicts:
            self._verdicts[key] = key[0] == key[1] or _equivalent(gold, answer, self.timeout_s)
        return self._verdicts[key]

    def cluster(self, answers: Sequence[str | None]) -> list[int]:
        """Group equivalent answers: one cluster id per answer, -1 for a missing answer.

        Identical normalized strings share a cluster at once; distinct strings are merged by
        pairwise math-verify checks (symmetrically: either direction counts).
        """
        keys = [normalize(a) if a is not None else None for a in answers]
        distinct = list(dict.fromkeys(k for k in keys if k is not None))
        parent = list(range(len(distinct)))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        originals = {normalize(a): a for a in answers if a is not None}
        # Beyond this many distinct answers, pairwise checks cost more than they change: such
        # sets are mostly noise, and string identity already merges the repeated answers.
        if len(distinct) <= 48:
            for i in range(len(distinct)):
                for j in range(i):
                    if find(i) == find(j):
                        continue
                    if self._same(originals[distinct[i]], originals[distinct[j]]):
                        parent[find(i)] = find(j)
        roots = {k: find(i) for i, k in enumerate(distinct)}
        return [roots[k] if k is not None else -1 for k in keys]

    def _same(self, a: str, b: str) -> bool:
        key = (normalize(a), normalize(b)) if a <= b else (normalize(b), normalize(a))
        if key not in self._verdicts:
            self._verdicts[key] = _equivalent(a, b, self.timeout_s) or _equivalent(
                b, a, self.timeout_s
            )
        return self._verdicts[key]


def _equivalent(gold: str, answer: str, timeout_s: int) -> bool:
    if len(answer) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return False
    if threading.current_thread() is threading.main_thread():
        return _verify(gold, answer, timeout_s)
    return _in_child(gold, answer, timeout_s)


def _verify(gold: str, answer: str, timeout_s: int | None) -> bool:
    from math_verify import parse, verify

    try:
        gold_parsed = _parse(parse, gold, timeout_s)
        answer_parsed = _parse(parse, answer, timeout_s)
        if not gold_parsed or not answer_parsed:
            return False
        return bool(verify(gold_parsed, answer_parsed, timeout_seconds=timeout_s))
    except Exception as error:  # math-verify and sympy raise many kinds; a failure is "not equal"
        log.debug("verification of %r against %r failed: %s", answer, gold, error)
        return False


def _parse(parse: Any, text: str, timeout_s: int | None) -> list:
    parsed = parse(f"${text}$", parsing_timeout=timeout_s)
    if not parsed:
        parsed = parse(text, parsing_timeout=timeout_s)
    return parsed


def _child(conn: Any, gold: str, answer: str) -> None:
    conn.send(_verify(gold, answer, None))
    conn.close()


def _in_child(gold: str, answer: str, timeout_s: int) -> bool:
    """Off the main thread math-verify's signal timeouts cannot work: bound a forked child."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, gold, answer), daemon=True)
    child.start()
    send.close()
    result = receive.recv() if receive.poll(2 * timeout_s) else False
    child.join(0.1)
    if child.is_alive():
        child.kill()
        child.join()
    return bool(result)
