from __future__ import annotations

import threading
import time

import pytest

from hotncold.evaluation.grading import Grader, extract_answer, grade


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so \\boxed{19} and later \\boxed{20}.", "20"),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
        (
            "The final answer is $\\boxed{(3, \\frac{\\pi}{2})}$. I hope it is correct.",
            "(3, \\frac{\\pi}{2})",
        ),
        ("#### 42\nThe answer is: 42", "42"),
        ("The answer is 1,000.", "1000"),
        ("The final answer is 7 apples.", "7"),
        ("The final answer is $\\frac{3}{4}$ of the cake.", "\\frac{3}{4}"),
        ("She has 12 + 7 = 19 apples left", "19"),
        ("no numbers at all", None),
        ("cut off inside \\boxed{12", "12"),
        ("\\fbox{5}", "5"),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize(
    ("text", "gold", "expected"),
    [
        ("\\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", True),
        ("\\boxed{4.67}", "\\frac{14}{3}", False),
        ("\\boxed{0.5}", "\\frac12", True),
        ("\\boxed{\\sqrt{117}}", "3\\sqrt{13}", True),
        ("\\boxed{(3,\\frac{\\pi}{2})}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
        ("\\boxed{[1,3)}", "[1,3)", True),
        ("\\boxed{(1,3)}", "[1,3)", False),
        ("\\boxed{\\text{(C)}}", "\\text{(C)}", True),
        ("\\boxed{10\\%}", "10", True),
        ("\\boxed{x^2+2x+1}", "(x+1)^2", True),
        ("\\boxed{-5}", "5", False),
        ("The answer is: 42", "42", True),
        ("nothing here", "42", False),
    ],
)
def test_grade_tricky_latex(text, gold, expected):
    assert grade(text, gold) is expected


def test_pathological_answer_is_time_bounded():
    started = time.perf_counter()
    assert grade("\\boxed{2^{2^{2^{2^{100}}}}}", "3") is False
    assert time.perf_counter() - started < 15


def test_grading_off_the_main_thread_is_bounded_too():
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            (grade("\\boxed{\\frac{1}{2}}", "0.5"), grade("\\boxed{3}", "4"))
        )
    )
    thread.start()
    thread.join(60)
    assert results == [(True, False)]


def test_clusters_group_equivalent_answers():
    clusters = Grader().cluster(["19", "19.0", "\\frac{38}{2}", "20", None, "twenty", " 19 "])
    assert clusters[0] == clusters[1] == clusters[2] == clusters[6]
    assert len({clusters[0], clusters[3], clusters[5]}) == 3
    assert clusters[4] == -1
