"""command: `python -m hotncold.status <sweep dir> [--resubmit [hydra.launcher.k=v ...]]`

Shows every job of a sweep: done, running (or queued), partial (with problem counts), failed
(with the error line) or missing (never started, or its folder vanished). The jobs are the ones
the sweep's `multirun.yaml` lists, so a job that never wrote anything is still reported.
`--resubmit` launches exactly the partial, failed and missing jobs again, with their original
overrides, through the sweep's own launcher; each resumes from its completions.jsonl, so the
problems a partial job finished are kept. Exit status: 0 when every job is done, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hotncold.cluster.sweep_status import (
    SweepStatus,
    format_status,
    refuse_blind_resubmission,
    resubmit,
    sweep_status,
)
from hotncold.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hotncold.status", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder (multirun/<sweep_name>)")
    parser.add_argument(
        "--resubmit",
        action="store_true",
        help="launch the partial, failed and missing jobs again (through the same launcher)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="with --resubmit: launcher settings for the new jobs (hydra.launcher.timeout_min=600)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    # intermixed: `<sweep dir> --resubmit hydra.launcher.k=v` (overrides after the flag) parses
    args = parser.parse_intermixed_args(argv)
    if args.overrides and not args.resubmit:
        parser.error("overrides are only for --resubmit")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        status = sweep_status(args.sweep_dir)
        if args.resubmit:
            print(format_status(status), flush=True)
            refuse_blind_resubmission(status)
            if not status.unfinished:
                print("nothing to resubmit")
            else:
                print(f"resubmitting {len(status.unfinished)} jobs", flush=True)
                try:
                    for error in resubmit(status, args.overrides):
                        print(f"a job failed: {error}", file=sys.stderr)
                except (ConfigError, SystemExit):
                    raise
                except Exception as error:  # the launcher gave up waiting; report what is
                    print(f"launcher: {type(error).__name__}: {error}", file=sys.stderr)
                status = sweep_status(args.sweep_dir)
    except ConfigError as error:
        print(f"hotncold: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_as_json(status), indent=2))
    else:
        print(format_status(status))
    return 0 if all(j.state == "done" for j in status.jobs) else 1


def _as_json(status: SweepStatus) -> dict[str, Any]:
    out = asdict(status)
    out["counts"] = dict(status.counts())
    return out


if __name__ == "__main__":
    sys.exit(main())
