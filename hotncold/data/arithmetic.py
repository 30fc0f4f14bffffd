"""A deterministic generator of arithmetic word problems with a MATH-like schema.

Why generated: tests and the CPU preview must run offline, and difficulty analysis needs levels.
Difficulty rises with the level through more operations, larger numbers and more steps:

| level | operations | numbers up to | operators                       |
|-------|------------|---------------|---------------------------------|
| 1     | 1          | 10            | +                               |
| 2     | 1          | 20            | + -                             |
| 3     | 2          | 20            | + -                             |
| 4     | 2          | 30            | + -, one x (factor 2-5)         |
| 5     | 3          | 50            | + - x, one exact division       |

The scale is set for small models: the 135M CPU model solves some level-1 problems and almost
no level-5 ones, so temperature effects can be read per level on the CPU.

Every intermediate result is a non-negative integer, so each step of a correct solution is an
equation the equation checker can verify.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LEVELS = (1, 2, 3, 4, 5)

_SPEC = {  # level: (operations, largest number, operators to draw from, operators required)
    1: (1, 10, "+", ""),
    2: (1, 20, "+-", ""),
    3: (2, 20, "+-", ""),
    4: (2, 30, "+-", "*"),
    5: (3, 50, "+-*", "/"),
}

_SUBJECTS = {
    frozenset("+"): "Addition",
    frozenset("-"): "Subtraction",
    frozenset("+-"): "Addition and Subtraction",
}

_CHARACTERS = ["Mia", "Liam", "Ava", "Noah", "Zoe", "Omar", "Lena", "Ravi", "Sofia", "Kenji"]
_ITEMS = ["apples", "marbles", "stickers", "coins", "books", "pencils", "shells", "cards"]

# Each operation is phrased as what happens to the running total.
_PHRASES = {
    "+": [
        "{who} finds {x} more {item}.",
        "A friend gives {who} {x} more {item}.",
        "{who} buys {x} more {item}.",
    ],
    "-": ["{who} gives away {x} {item}.", "{who} loses {x} {item}.", "{who} uses {x} {item}."],
    "*": [
        "The number of {item} is then multiplied by {x}.",
        "{who} then ends up with {x} times as many {item}.",
    ],
    "/": [
        "{who} then splits the {item} into {x} equal groups and keeps one group.",
        "{who} then divides the {item} equally into {x} boxes and keeps one box.",
    ],
}


@dataclass(frozen=True)
class ArithmeticProblem:
    problem: str
    answer: str
    level: int
    subject: str
    unique_id: str
    expression: str


def generate(per_level: int, seed: int = 0, levels: tuple[int, ...] = LEVELS) -> list[dict]:
    """Return `per_level` problems for each level, as MATH-schema rows, in level order."""
    rows = []
    for level in levels:
        if level not in _SPEC:
            raise ValueError(f"arithmetic levels are 1-5, got {level}")
        rng = random.Random(f"hotncold-arithmetic-{seed}-{level}")
        for index in range(per_level):
            p = _make(rng, level, f"arithmetic/level{level}/seed{seed}/{index}")
            rows.append(
                {
                    "problem": p.problem,
                    "answer": p.answer,
                    "level": p.level,
                    "subject": p.subject,
                    "unique_id": p.unique_id,
                    "solution": p.expression,
                }
            )
    return rows


def _make(rng: random.Random, level: int, uid: str) -> ArithmeticProblem:
    num_ops, top, ops, required = _SPEC[level]
    while True:
        chosen = [rng.choice(ops) for _ in range(num_ops)]
        for op, position in zip(required, rng.sample(range(num_ops), len(required))):
            chosen[position] = op
        problem = _try(rng, chosen, top, uid, level)
        if problem is not None:
            return problem


def _try(rng: random.Random, ops: list[str], top: int, uid: str, level: int):
    who, item = rng.choice(_CHARACTERS), rng.choice(_ITEMS)
    total = rng.randint(2, top)
    sentences = [f"{who} has {total} {item}."]
    expression = str(total)
    for op in ops:
        if op == "+":
            x = rng.randint(1, top)
            total += x
        elif op == "-":
            if total < 2:
                return None
            x = rng.randint(1, total - 1)
            total -= x
        elif op == "*":
            x = rng.randint(2, 5)
            total *= x
        else:
            divisors = [d for d in range(2, 10) if total % d == 0]
            if not divisors:
                return None
            x = rng.choice(divisors)
            total //= x
        expression = f"({expression} {op} {x})"
        sentences.append(rng.choice(_PHRASES[op]).format(who=who, x=x, item=item))
    sentences.append(f"How many {item} does {who} have now?")
    subject = _SUBJECTS.get(frozenset(ops), "Mixed Operations")
    return ArithmeticProblem(
        problem=" ".join(sentences),
        answer=str(total),
        level=level,
        subject=subject,
        unique_id=uid,
        expression=expression[1:-1] if expression.startswith("(") else expression,
    )
