"""command: `python -m hotncold.analyze <run or sweep dirs...> [--out DIR]`: a study's report,
and its verdict on the terminal."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from hotncold.analyze.collect import AnalysisError
from hotncold.analyze.pipeline import analyze
from hotncold.analyze.render import terminal_summary
from hotncold.analyze.tables import Options
from hotncold.evaluation.metrics import METHODS
from hotncold.prm.base import AGG_STRATEGIES

log = logging.getLogger("hotncold.analyze")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hotncold.analyze",
        description="Tables, statistics and figures over finished hotncold runs: accuracy vs N "
        "with bootstrap intervals, hot vs cold per level, diversity and compute.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="run directories (with run.json) or folders holding them at any depth",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: <path>/analysis for one path, ./analysis for several)",
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="weighted",
        help="selection method of the headline statistics (default: weighted)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=2000, help="bootstrap resamples (default: 2000)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    p.add_argument(
        "--ci", type=float, default=0.95, help="confidence level of intervals (default: 0.95)"
    )
    p.add_argument(
        "--hot", type=float, default=None, help="hot temperature (default: the highest single)"
    )
    p.add_argument(
        "--cold", type=float, default=None, help="cold temperature (default: the lowest single)"
    )
    p.add_argument(
        "--point",
        type=float,
        default=1.0,
        help="tolerance in points for 'the mix is within a point of the best' (default: 1)",
    )
    p.add_argument(
        "--agg",
        choices=AGG_STRATEGIES,
        default=None,
        help="re-aggregate step scores with this strategy (default: each run's own)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # the terminal gets the verdict (terminal_summary) and warnings (runs skipped, ...)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.bootstrap < 1:
        return _fail("--bootstrap must be at least 1 (2000 is a good default)")
    if not 0 < args.ci < 1:
        return _fail(f"--ci={args.ci} must be between 0 and 1, e.g. 0.95")
    if args.point < 0:
        return _fail("--point must be 0 or more (points of accuracy)")
    out = args.out or (args.paths[0] / "analysis" if len(args.paths) == 1 else Path("analysis"))
    opts = Options(
        resamples=args.bootstrap,
        seed=args.seed,
        level=args.ci,
        method=args.method,
        point=args.point / 100.0,
        hot=args.hot,
        cold=args.cold,
    )
    command = (
        shlex.join(["python", "-m", "hotncold.analyze", *sys.argv[1:]])
        if argv is None
        else (shlex.join(["python", "-m", "hotncold.analyze", *argv]))
    )
    try:
        analysis = analyze(args.paths, out, opts, agg=args.agg, command=command)
    except AnalysisError as error:
        return _fail(str(error))
    print(terminal_summary(analysis, opts, out / "report.md"))
    return 0


def _fail(message: str) -> int:
    print(f"hotncold.analyze: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
