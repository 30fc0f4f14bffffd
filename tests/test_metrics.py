"""Metrics checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from hotncold.evaluation.metrics import (
    ProblemOutcome,
    budgets,
    metrics_from_records,
    pass_at,
    problem_curves,
    summarize,
)


def curves(scores, clusters, correct, groups=None, ns=(1, 2, 4), subsets=4000, seed=0):
    outcome = ProblemOutcome.of(scores, clusters, correct, groups)
    return problem_curves(outcome, list(ns), subsets, np.random.default_rng(seed))


def test_budgets():
    assert budgets(1) == [1]
    assert budgets(8) == [1, 2, 4, 8]
    assert budgets(12) == [1, 2, 4, 8, 12]


def test_pass_at_k_unbiased_estimator():
    assert pass_at(4, 1, 1) == pytest.approx(0.25)
    assert pass_at(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at(4, 2, 2) == pytest.approx(1 - 1 / 6)
    assert pass_at(4, 0, 4) == 0.0
    assert pass_at(4, 3, 2) == 1.0


def test_four_completions_by_hand():
    # answers: A (right, 0.9), B (wrong, 0.8), B (wrong, 0.7), A (right, 0.1)
    c = curves([0.9, 0.8, 0.7, 0.1], [0, 1, 1, 0], [True, False, False, True])
    assert c["pass"][1] == pytest.approx(0.5)
    assert c["pass"][2] == pytest.approx(5 / 6)
    # N=4: naive picks 0.9 (A, right); weighted A=1.0 vs B=1.5 -> B, wrong; majority ties 2-2 -> 1/2
    assert c["naive"][4] == 1.0
    assert c["weighted"][4] == 0.0
    assert c["majority"][4] == pytest.approx(0.5, abs=0.03)
    # N=1: every method returns the one completion: half are right
    for method in ("naive", "weighted", "majority"):
        assert c[method][1] == pytest.approx(0.5, abs=0.03)
    # N=2 naive: of the 6 pairs, right when it holds item 0 (3 pairs) or is {2,3}... {1,3}: 0.8
    # wins (wrong); {2,3}: 0.7 wins (wrong); {1,2}: wrong -> 3/6
    assert c["naive"][2] == pytest.approx(0.5, abs=0.03)
    # N=2 majority: pairs {0,3} right; {1,2} wrong; mixed pairs (4) tie -> 1/2 each: (1 + 2)/6
    assert c["majority"][2] == pytest.approx(0.5, abs=0.03)


def test_missing_answers_never_win_a_vote():
    c = curves([0.5, 0.9, 0.9], [0, -1, -1], [True, False, False], ns=(3,))
    assert c["majority"][3] == 1.0 and c["weighted"][3] == 1.0
    assert c["naive"][3] == 0.0  # the best-scored completion has no answer
    none = curves([0.5, 0.5], [-1, -1], [False, False], ns=(2,))
    assert none["majority"][2] == 0.0


def test_ties_break_at_random_not_by_position():
    # equal scores: the first completion is wrong, the second right
    c = curves([0.5, 0.5], [0, 1], [False, True], ns=(2,))
    assert c["naive"][2] == pytest.approx(0.5, abs=0.03)


def test_subsets_keep_groups_whole():
    # two groups of two: group 0 all right, group 1 all wrong; N=2 takes one whole group
    c = curves(
        [0.1, 0.2, 0.9, 0.8],
        [0, 0, 1, 1],
        [True, True, False, False],
        groups=[0, 0, 1, 1],
        ns=(1, 2, 4),
    )
    assert c["pass"][2] == pytest.approx(0.5, abs=0.03)  # plain subsets would give 5/6
    assert c["naive"][4] == 0.0


def test_summary_by_level_and_subject():
    problems = [
        {"level": 1, "subject": "a"},
        {"level": 1, "subject": "b"},
        {"level": 2, "subject": "a"},
    ]
    cs = [{m: {1: v} for m in ("naive", "weighted", "majority", "pass")} for v in (1.0, 0.0, 0.5)]
    s = summarize(problems, cs)
    assert s["overall"]["naive"]["1"] == pytest.approx(0.5)
    assert s["by_level"]["1"]["naive"]["1"] == pytest.approx(0.5)
    assert s["by_level"]["2"]["num_problems"] == 1
    assert s["by_subject"]["a"]["pass"]["1"] == pytest.approx(0.75)


def test_weighted_votes_tie_by_relative_distance():
    # prod over long solutions: real tallies below 1e-12 still rank (3e-14 beats 1e-14)
    tiny = curves([3e-14, 1e-14], [0, 1], [True, False], ns=(2,))
    assert tiny["weighted"][2] == 1.0
    tiny = curves([1e-14, 3e-14], [0, 1], [True, False], ns=(2,))
    assert tiny["weighted"][2] == 0.0
    # floating-point noise is a tie: broken at random
    noise = curves([1 + 1e-15, 1.0], [0, 1], [True, False], ns=(2,))
    assert noise["weighted"][2] == pytest.approx(0.5, abs=0.03)
    # naive selection uses the same rule
    assert noise["naive"][2] == pytest.approx(0.5, abs=0.03)
    assert tiny["naive"][2] == 0.0


def truncated_record():
    """A Best-of-N record: the two truncated samples end with the wrong number 7, have the
    best scores, and are the majority; the finished one answers 2, right."""
    completions = [
        {"score": 0.9, "cluster": 0, "correct": False, "group": 0, "finished": False},
        {"score": 0.8, "cluster": 0, "correct": False, "group": 1, "finished": False},
        {"score": 0.3, "cluster": 1, "correct": True, "group": 2, "finished": True},
        {"score": 0.2, "cluster": -1, "correct": False, "group": 3, "finished": False},
    ]
    return {"uid": "u", "problem": {"level": 1}, "completions": completions}


def test_finished_only_gives_unfinished_samples_no_answer():
    record = truncated_record()
    counted = metrics_from_records([record], 4, 4000, 0, finished_only=True)["overall"]
    assert counted["majority"]["4"] == 1.0 and counted["weighted"]["4"] == 1.0
    assert counted["naive"]["4"] == 1.0  # the best eligible one, not the best-scored
    # N=1: only the finished sample (1 in 4) answers, and it is right
    for method in ("naive", "majority", "weighted", "pass"):
        assert counted[method]["1"] == pytest.approx(0.25, abs=0.03)
    # N=2: right iff the pair holds the finished sample (3 of 6 pairs)
    assert counted["majority"]["2"] == pytest.approx(0.5, abs=0.03)
    assert counted["pass"]["2"] == pytest.approx(0.5)
    # without it, truncated text votes with its last number
    voted = metrics_from_records([record], 4, 4000, 0, finished_only=False)["overall"]
    assert voted["majority"]["4"] == 0.0 and voted["naive"]["4"] == 0.0
    assert voted["pass"]["4"] == 1.0


def test_an_unfinished_sample_is_never_correct_under_finished_only():
    record = truncated_record()
    record["completions"][0]["correct"] = True  # its last number happens to be right
    counted = metrics_from_records([record], 4, 4000, 0, finished_only=True)["overall"]
    assert counted["pass"]["1"] == pytest.approx(0.25)
    voted = metrics_from_records([record], 4, 4000, 0, finished_only=False)["overall"]
    assert voted["pass"]["1"] == pytest.approx(0.5)


def test_soft_best_of_n_is_the_exact_expectation_worked_out_by_hand():
    # scores 0.9, 0.5, 0.1 with only the last two right, tau = 0.5: weights e^1.8, e^1, e^0.2
    scores, correct = [0.9, 0.5, 0.1], [False, True, True]
    outcome = ProblemOutcome.of(scores, [0, 1, 1], correct)
    out = problem_curves(outcome, [1, 2, 3], 20000, np.random.default_rng(0), [0.5, 1e-6, 1e6])
    soft = out["soft:0.5"]
    assert soft[3] == pytest.approx(3.939685 / 9.989332, abs=1e-6)  # all three: exact
    assert soft[1] == pytest.approx(2 / 3, abs=0.01)  # one sample: its own correctness
    # N=2, the mean over the three pairs: {0,1} e/(e^1.8+e), {0,2} e^0.2/(e^1.8+e^0.2), {1,2} 1
    by_hand = (2.718282 / 8.767929 + 1.221403 / 7.271050 + 1.0) / 3
    assert soft[2] == pytest.approx(by_hand, abs=0.01)  # 20000 random pairs, seed 0
    # tau -> 0 is naive selection; a huge tau picks uniformly: the share of right completions
    assert out["soft:1e-06"] == pytest.approx(out["naive"], abs=0.01)
    assert out["soft:1e-06"][3] == 0.0
    assert out["soft:1e+06"][3] == pytest.approx(2 / 3, abs=1e-6)


def test_soft_best_of_n_never_picks_an_unfinished_completion_and_adds_no_randomness():
    outcome = ProblemOutcome.of(
        [0.9, 0.5, 0.1], [0, 1, 1], [True, True, False], None, [False, True, True]
    )
    out = problem_curves(outcome, [3], 10, np.random.default_rng(0), [0.5])
    assert out["soft:0.5"][3] == pytest.approx(2.718282 / (2.718282 + 1.221403), abs=1e-6)
    # the other methods' numbers do not depend on the grid (no extra random draws)
    plain = problem_curves(outcome, [1, 2, 3], 64, np.random.default_rng(3))
    graded = problem_curves(outcome, [1, 2, 3], 64, np.random.default_rng(3), [0.1, 1.0])
    assert {m: graded[m] for m in plain} == plain


def test_metrics_report_soft_best_of_n_by_tau_and_budget():
    record = {
        "uid": "p",
        "problem": {"level": 1, "subject": None},
        "completions": [
            {"score": s, "cluster": k, "correct": ok, "group": i, "finished": True}
            for i, (s, k, ok) in enumerate([(0.9, 0, False), (0.5, 1, True), (0.1, 1, True)])
        ],
    }
    m = metrics_from_records([record], 3, 16, 0, finished_only=True, selection_temperatures=[0.5])
    soft = m["soft_best_of_n"]
    assert soft["selection_temperatures"] == [0.5]
    assert soft["overall"]["0.5"]["3"] == pytest.approx(3.939685 / 9.989332, abs=1e-6)
    assert soft["by_level"]["1"]["0.5"]["3"] == soft["overall"]["0.5"]["3"]
    assert soft["per_problem"]["p"]["0.5"]["3"] == soft["overall"]["0.5"]["3"]
    assert "soft_best_of_n" not in metrics_from_records([record], 3, 16, 0, finished_only=True)
