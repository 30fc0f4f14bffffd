"""`analyze(...)`: read runs, compute every table, save them, then have report.md written.

The data flow of `python -m hotncold.analyze`: `collect` reads the run directories into tidy
tables, `tables` computes every statistic from them into one `Analysis`, the tables are saved
as csv/parquet, and `render` writes report.md (drawing each figure, `plots`, where it is
referenced).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from hotncold.analyze import adaptive, render, tables
from hotncold.analyze.collect import collect, save
from hotncold.analyze.tables import Analysis, Options

log = logging.getLogger(__name__)


def analyze(
    paths: Sequence[str | Path],
    out: str | Path,
    opts: Options | None = None,
    agg: str | None = None,
    command: str | None = None,
) -> Analysis:
    """Analyze every finished run under `paths`; write tables, figures and report.md to `out`."""
    opts = opts or Options()
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    data = collect(paths, agg=agg)
    log.info(
        "%d runs in %d configurations (%d skipped); bootstrapping with %d resamples",
        len(data.runs),
        data.results["config"].nunique(),
        len(data.skipped),
        opts.resamples,
    )
    summary = tables.summary(data.results, opts)
    cmp = tables.comparisons(data.results, summary, opts)
    gaps, shares = tables.oracle(data.results, opts)
    analysis = Analysis(
        collection=data,
        configs=tables.configs_of(data.results),
        summary=summary,
        comparisons=cmp,
        best=tables.best_temperatures(summary, cmp, opts),
        within=tables.mix_within_point(summary, opts),
        oracle_gaps=gaps,
        oracle_shares=shares,
        diversity=tables.diversity(data.problems, summary, opts),
        equal_compute=tables.equal_compute(summary, opts),
        equal_flops=tables.equal_compute(summary, opts, column="flops"),
        prm_comparisons=tables.prm_comparisons(data.results, opts),
        selection=tables.selection_summary(data.selection, opts),
        adaptive_chosen=adaptive.chosen_temperatures(data.problems),
        adaptive_versus=adaptive.versus_best_fixed(data.results, opts),
        adaptive_regret=adaptive.regret(data.results, opts),
    )
    files = []
    files += save(data.results, out, "results")
    files += save(data.problems, out, "problems")
    for name, frame in (
        ("runs", data.runs),
        ("summary", summary),
        ("comparisons", cmp),
        ("best_temperature", analysis.best),
        ("mix_within_point", analysis.within),
        ("oracle", gaps),
        ("oracle_shares", shares),
        ("diversity", analysis.diversity),
        ("equal_compute", analysis.equal_compute),
        ("equal_flops", analysis.equal_flops),
        ("prm_comparisons", analysis.prm_comparisons),
        ("selection", analysis.selection),
        ("adaptive_chosen", analysis.adaptive_chosen),
        ("adaptive_versus", analysis.adaptive_versus),
        ("adaptive_regret", analysis.adaptive_regret),
    ):
        files += save(frame, out, name, formats=("csv",))
    report = render.write_report(analysis, out, opts, command)
    analysis.files = [*files, report, *sorted((out / "figures").glob("*.png"))]
    log.info("report: %s", report)
    return analysis
