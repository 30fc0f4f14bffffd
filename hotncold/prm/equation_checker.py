"""A model-free process verifier: it checks the arithmetic a step claims.

Why a hand-written verifier: the CPU default needs a PRM that is real (it separates right from
wrong steps) yet needs no download, and the 135M model is no judge of its own steps. Arithmetic
claims are exactly checkable, so this one scores a step by evaluating every `a op b = c` (and
chains `a = b = c`) in it with sympy.

A chain is checked only when one of its sides holds an operator: `x = 5` or `1 dozen = 12`
state facts the checker cannot know, so they count as nothing checkable. Words between numbers
("12 apples - 5 apples = 7 apples") are dropped; two numbers with no operator between them
start a new chain. A decimal is accepted when it is the exact value rounded to the digits given.

Score of a step: `neutral_score` when nothing is checkable, `correct_score` when every claim is
right, else between `wrong_score` and `neutral_score` in proportion to the right claims, so any
false claim ranks a step below an unverifiable one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from tokenize import TokenError

import sympy
from sympy.parsing.sympy_parser import parse_expr

from hotncold.config import EquationCheckerConfig
from hotncold.prm.base import PRM, ItemScores, PendingScore

_LATEX = [
    (re.compile(r"\\d?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}"), r"((\1)/(\2))"),
    (re.compile(r"\\(?:times|cdot|ast)"), "*"),
    (re.compile(r"\\div"), "/"),
    (re.compile(r"\\(?:boxed|text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}"), r" \1 "),
    (re.compile(r"\\(?:left|right|,|;|!|quad|qquad)"), " "),
    (re.compile(r"\\[\[\]()]|\$"), " "),
]
_UNICODE = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "—": " "})
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
_TIMES_X = re.compile(r"(?<=\d)\s*[xX]\s*(?=\d)")  # "3 x 4" means 3 * 4
_TOKEN = re.compile(r"\d+(?:\.\d+)?|\*\*|[-+*/^()=]|[.,;:!?\n]|[A-Za-z_]+|\S")
_BREAK = {".", ",", ";", ":", "!", "?", "\n"}
_OPERATORS = {"+", "-", "*", "/", "^", "**"}
MAX_EXPONENT = 64


@dataclass(frozen=True)
class Claim:
    left: str
    right: str
    holds: bool


def find_claims(text: str) -> list[Claim]:
    """Every checkable equality in `text`, with whether it holds."""
    claims = []
    for chain in _chains(_normalize(text)):
        if not any(_has_operator(side) for side in chain):
            continue  # "1 dozen = 12", "x = 5": nothing computed, nothing to check
        for left, right in itertools.pairwise(chain):
            a, b = _evaluate(left), _evaluate(right)
            if a is None or b is None:
                continue
            claims.append(Claim(left, right, _close(a, b, left, right)))
    return claims


def _normalize(text: str) -> str:
    text = text.translate(_UNICODE)
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    return _TIMES_X.sub(" * ", text)


def _chains(text: str) -> list[list[str]]:
    """Split the token stream into equality chains: lists of expression strings."""
    chains: list[list[str]] = []
    sides: list[str] = []
    current: list[str] = []
    previous_kind = None  # "operand", "operator", "open", "close"
    word_since = False  # a word was dropped since the last token kept
    # per open "(": whether a "*" was implied before it, and the kind of token before it
    opened: list[tuple[bool, str | None]] = []

    def close_chain() -> None:
        nonlocal sides, current
        expression = "".join(current).strip()
        if expression:
            sides.append(expression)
        if len(sides) >= 2:
            chains.append(sides)
        sides, current = [], []

    for token in _TOKEN.findall(text):
        is_word = token[0].isalpha() or token[0] == "_"
        if token in _BREAK:
            # "3.5" is one token, so a lone "." ends a sentence
            close_chain()
            previous_kind = None
            opened = []
        elif token == "=":
            expression = "".join(current).strip()
            if not expression:
                sides, current = [], []
            else:
                sides.append(expression)
                current = []
            previous_kind = None
        elif token[0].isdigit():
            if previous_kind in ("operand", "close"):
                # two operands side by side: the earlier expression was not part of a claim
                if sides:
                    close_chain()
                current = []
            current.append(token)
            previous_kind = "operand"
        elif token in _OPERATORS:
            current.append(token)
            previous_kind = "operator"
        elif token == "(":
            implied = False
            if previous_kind in ("operand", "close"):
                if word_since:  # "7 apples (from the shop)" is no product
                    if sides:
                        close_chain()
                    current = []
                else:
                    current.append("*")  # 2(3 + 4)
                    implied = True
            opened.append((implied, previous_kind))
            current.append(token)
            previous_kind = "open"
        elif token == ")":
            if current and current[-1] == "(":
                # parentheses that held only words, "8 (apples)": a unit, dropped with them
                current.pop()
                implied, previous_kind = opened.pop() if opened else (False, None)
                if implied:
                    current.pop()
            else:
                if opened:
                    opened.pop()
                current.append(token)
                previous_kind = "close"
        # words and other symbols are dropped: units and filler between numbers
        word_since = is_word or (word_since and not _kept(token))
    close_chain()
    return chains


def _kept(token: str) -> bool:
    return token[0].isdigit() or token in _OPERATORS or token in ("(", ")", "=")


def _has_operator(expression: str) -> bool:
    body = expression.lstrip("-( ")
    return any(op in body for op in ("+", "-", "*", "/", "^"))


def _evaluate(expression: str) -> sympy.Rational | None:
    expression = expression.replace("^", "**")
    if expression.count("(") != expression.count(")") or expression.count("**") > 1:
        return None
    exponent = re.search(r"\*\*\s*\(?\s*(-?\d+(?:\.\d+)?)", expression)
    if exponent and abs(float(exponent.group(1))) > MAX_EXPONENT:
        return None
    try:
        value = parse_expr(expression, evaluate=True)
        if not isinstance(value, sympy.Expr):  # "8 (apples)" leaves "8*()": a tuple, no value
            return None
        value = sympy.nsimplify(value, rational=True) if value.is_Float else value
    except (SyntaxError, TypeError, ValueError, ZeroDivisionError, sympy.SympifyError, TokenError):
        return None
    if not value.is_number or value.has(sympy.zoo, sympy.nan, sympy.oo):
        return None
    return value


def _close(a: sympy.Expr, b: sympy.Expr, left: str, right: str) -> bool:
    """Equal, or equal after rounding the exact side to the decimals the other side shows."""
    if sympy.simplify(a - b) == 0:
        return True
    places = max(
        _decimals(left if not _has_operator(left) else ""),
        _decimals(right if not _has_operator(right) else ""),
    )
    if places == 0:
        return False
    return abs(float(a) - float(b)) <= 0.5 * 10 ** (-places) + 1e-12


def _decimals(expression: str) -> int:
    match = re.search(r"\.(\d+)\s*$", expression.strip(" )"))
    return len(match.group(1)) if match else 0


class EquationChecker(PRM):
    """`prm=equation_checker`: scores steps by checking their arithmetic claims."""

    name = "equation_checker"

    def __init__(
        self,
        cfg: EquationCheckerConfig,
        engine: object | None = None,
        model: object | None = None,
        prompt: object | None = None,
    ) -> None:
        super().__init__(batch_size=cfg.batch_size, incremental=cfg.incremental)
        self.neutral = cfg.neutral_score
        self.correct = cfg.correct_score
        self.wrong = cfg.wrong_score

    def score_step(self, step: str) -> float:
        claims = find_claims(step)
        if not claims:
            return self.neutral
        right = sum(claim.holds for claim in claims)
        if right == len(claims):
            return self.correct
        return self.wrong + (self.neutral - self.wrong) * right / len(claims)

    def _score_new(self, items: Sequence[PendingScore]) -> list[ItemScores]:
        return [
            ItemScores([self.score_step(step) for step in item.steps[item.start :]], tokens=0)
            for item in items
        ]
