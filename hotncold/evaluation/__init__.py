"""Grading answers and the accuracy metrics computed from graded completions."""
