from __future__ import annotations

import pytest

from hotncold.config import EquationCheckerConfig
from hotncold.prm.base import PRM, ItemScores, aggregate, prefix_digests, split_steps
from hotncold.prm.equation_checker import EquationChecker, find_claims
from hotncold.prm.registry import build_prm, prm_config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tom has 12 + 7 = 19 apples.", [True]),
        ("12 apples - 5 apples = 7 apples", [True]),
        ("So 12 - 7 = 2 apples are left (2 apples - 7 apples bought)", [False]),
        ("Step 1: 12 + 7 = 19", [True]),
        ("$3 \\times 4 = 12$ and $\\frac{10}{4} = 2.5$", [True, True]),
        ("10 / 3 = 3.33", [True]),
        ("10/3 = 3.4", [False]),
        ("3 x 4 = 12", [True]),
        ("2(3+4) = 14", [True]),
        ("1,000 + 250 = 1,250", [True]),
        ("185 * 2 = 370, 370 + 16 = 386, 386 / 2 = 193", [True, True, True]),
        ("a = 3 + 4 = 7 = 8", [True, False]),
        ("-5 + 3 = -2", [True]),
        ("9 – 5 = 2", [False]),
        ("6 × 7 = 42 and 42 ÷ 6 = 7", [True, True]),
        ("x = 5", []),
        ("1 dozen = 12", []),
        ("The answer is 19.", []),
        ("9^9^9 = 1", []),
        ("5 / 0 = 3", []),
        ("2 () = 2 * () = 4", []),  # empty parentheses parse to a tuple, not a number
    ],
)
def test_claims(text, expected):
    assert [c.holds for c in find_claims(text)] == expected


def test_step_scores():
    checker = EquationChecker(EquationCheckerConfig())
    assert checker.score_step("12 + 7 = 19") == 1.0
    assert checker.score_step("nothing to check") == 0.5
    assert checker.score_step("12 + 7 = 20") == 0.0
    assert checker.score_step("12 + 7 = 19 and 19 - 5 = 13") == pytest.approx(0.25)


def test_words_in_parentheses_are_no_crash_and_no_error():
    # they leave an empty "()" next to a number, which sympy parses as a tuple
    checker = EquationChecker(EquationCheckerConfig())
    # parentheses holding only words are a unit: the claim before them is checked
    assert checker.score_step("5 + 3 = 8 (apples)") == 1.0
    assert checker.score_step("5 + 3 = 9 (apples)") == 0.0
    assert [c.holds for c in find_claims("2 (apples (red)) + 3 = 5")] == [True]
    assert checker.score_step("(apples) = 2 + 3 and 2 + 3 = 5") == 1.0


class CountingPRM(PRM):
    """Scores step i of a pair as i+1 tenths and records what it was asked to compute."""

    def __init__(self) -> None:
        super().__init__(batch_size=2)
        self.asked: list[tuple[str, int, int]] = []

    def _score_new(self, items):
        out = []
        for item in items:
            self.asked.append((item.problem, len(item.steps), item.start))
            out.append(ItemScores([(i + 1) / 10 for i in range(item.start, len(item.steps))], 0))
        return out


def test_prefix_cache_scores_only_new_steps():
    prm = CountingPRM()
    assert prm.score([("p", ["a", "b"])]) == [[0.1, 0.2]]
    assert prm.score([("p", ["a", "b", "c"]), ("p", ["a", "x"]), ("q", ["a"])]) == [
        [0.1, 0.2, 0.3],
        [0.1, 0.2],
        [0.1],
    ]
    assert prm.asked == [("p", 2, 0), ("p", 3, 2), ("p", 2, 1), ("q", 1, 0)]
    assert prm.stats.steps_scored == 2 + 1 + 1 + 1
    assert prm.stats.steps_cached == 2 + 1
    prm.reset()
    prm.score([("p", ["a"])])
    assert prm.asked[-1] == ("p", 1, 0)


def test_forgetting_a_problem_drops_its_cached_scores_only():
    """A windowed run forgets each problem's scores as its search ends (`PRM.forget`)."""
    prm = CountingPRM()
    prm.score([("p", ["a", "b"]), ("q", ["a", "b"])])
    prm.forget("p")
    prm.forget("never scored")  # nothing to forget: no error
    prm.score([("p", ["a", "b", "c"]), ("q", ["a", "b", "c"])])
    assert prm.asked[-2:] == [("p", 3, 0), ("q", 3, 2)]  # p from scratch, q from its cache


def test_identical_pairs_in_one_batch_are_scored_once():
    prm = CountingPRM()
    assert prm.score([("p", ["a"]), ("p", ["a"]), ("p", ["a"])]) == [[0.1]] * 3
    assert prm.asked == [("p", 1, 0)]


def test_digests_depend_on_problem_and_order():
    assert prefix_digests("p", ["a", "b"])[0] == prefix_digests("p", ["a", "c"])[0]
    assert prefix_digests("p", ["a", "b"])[1] != prefix_digests("p", ["b", "a"])[1]
    assert prefix_digests("p", ["a"]) != prefix_digests("q", ["a"])
    assert prefix_digests("p", ["ab"]) != prefix_digests("p", ["a", "b"])[1:]


def test_aggregation():
    assert aggregate([0.9, 0.2, 0.5], "last") == 0.5
    assert aggregate([0.9, 0.2, 0.5], "min") == 0.2
    assert aggregate([0.5, 0.5], "prod") == 0.25
    assert aggregate([0.5, 1.0], "mean") == 0.75
    assert aggregate([], "min") == 0.0


def test_split_steps():
    assert split_steps("a\n\nb\n\n\n\nc\n", "\n\n") == ["a", "b", "c"]
    assert split_steps("", "\n") == []


def test_build_prm_by_name():
    assert isinstance(build_prm(prm_config("equation_checker")), EquationChecker)


def test_non_incremental_mode_rescores_every_step():
    prm = CountingPRM()
    prm.incremental = False
    prm.score([("p", ["a", "b"])])
    assert prm.score([("p", ["a", "b", "c"])]) == [[0.1, 0.2, 0.3]]
    assert prm.asked == [("p", 2, 0), ("p", 3, 0)]
    assert prm.stats.steps_cached == 0 and prm.stats.steps_scored == 5


def test_compute_counts_the_tokens_each_item_cost():
    from hotncold.prm.base import PendingScore

    class Costly(CountingPRM):
        def _score_new(self, items):
            scored = super()._score_new(items)
            return [
                ItemScores(r.scores, 10 * (len(i.steps) - i.start)) for r, i in zip(scored, items)
            ]

    prm = Costly()
    out = prm.compute([PendingScore("p", ("a", "b"), 1), PendingScore("q", ("a",), 0)])
    assert out == [ItemScores([0.2], 10), ItemScores([0.1], 10)]
    assert prm.stats.tokens == 20
    prm.score([("p", ["a", "b", "c"])])
    assert prm.stats.tokens == 50


def test_a_prm_returns_what_it_computed_or_fails_loudly():
    """Token counts travel with the scores (no attribute to forget): a result must name its
    tokens, and a result missing for an item is an error, not a silent zero."""
    with pytest.raises(TypeError):
        ItemScores([0.5])  # type: ignore[call-arg]

    class Forgetful(CountingPRM):
        def _score_new(self, items):
            return super()._score_new(items)[:-1]

    with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
        Forgetful().score([("p", ["a"]), ("q", ["b"])])
