"""Analysis over any set of runs: when does hot beat cold?

`python -m hotncold.analyze <run or sweep dirs...> [--out DIR]` reads every finished run
(`collect`), computes accuracies with bootstrap intervals and paired temperature comparisons
(`stats`, `tables`), draws the figures (`plots`) and writes report.md with the tables
(`report`). Only run directories are read; no model or engine is needed.
"""

from hotncold.analyze.collect import AnalysisError, Collection, collect
from hotncold.analyze.render import Analysis, analyze
from hotncold.analyze.tables import Options

__all__ = ["Analysis", "AnalysisError", "Collection", "Options", "analyze", "collect"]
