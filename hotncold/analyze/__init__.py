"""Analysis over any set of runs: when does hot beat cold?

`python -m hotncold.analyze <run or sweep dirs...> [--out DIR]` reads every finished run
(`collect`), computes accuracies with bootstrap intervals and paired temperature comparisons
(`stats`, `tables`), saves the tables and has report.md written (`pipeline`), drawing the
figures (`plots`) where the report (`render`) references them. Only run directories are read;
no model or engine is needed.
"""

from hotncold.analyze.collect import AnalysisError, Collection, collect
from hotncold.analyze.pipeline import analyze
from hotncold.analyze.tables import Analysis, Options

__all__ = ["Analysis", "AnalysisError", "Collection", "Options", "analyze", "collect"]
