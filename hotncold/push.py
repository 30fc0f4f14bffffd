"""command: `python -m hotncold.push <run dir> [<owner>/<name>] [--public] [--split NAME]`

Pushes a finished run (or a merged one, `hotncold.merge`) to a Hugging Face dataset repository
as the config named after the run, one row per problem x completion, with its run.json,
metrics.json and config.yaml under `runs/<run name>/`, and records the push in run.json. The
repository defaults to the run's `output.hub_dataset_id`. An unfinished run is refused.
Exit status: 0 when pushed, 1 when the push failed, 2 for bad input (unfinished run, no
token, hub unreachable).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from hotncold.config import ConfigError, OutputConfig
from hotncold.experiment import lock
from hotncold.hub.rules import check_output
from hotncold.hub.upload import check_hub, finished_run, push_and_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hotncold.push", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("run_dir", type=Path, help="a finished run directory (holds run.json)")
    parser.add_argument(
        "repo_id", nargs="?", help="dataset repository <owner>/<name> (the run's own by default)"
    )
    parser.add_argument(
        "--public",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="create the repository public (default: the run's output.hub_private, else private)",
    )
    parser.add_argument("--split", default=None, help="split name (the run's own, or train)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rundir = finished_run(args.run_dir)
        stored = (yaml.safe_load(rundir.config.read_text()) or {}).get("output") or {}
        output = OutputConfig(
            push_to_hub=True,
            hub_dataset_id=args.repo_id or stored.get("hub_dataset_id"),
            hub_private=stored.get("hub_private", True) if args.public is None else not args.public,
            hub_split=args.split or stored.get("hub_split") or "train",
        )
        if not output.hub_dataset_id:
            raise ConfigError(
                f"{rundir.path} names no output.hub_dataset_id; give the repository: "
                f"python -m hotncold.push {rundir.path} <owner>/<name>"
            )
        check_output(output)
        repo = str(output.hub_dataset_id)
        check_hub(repo, "hotncold.push")
    except ConfigError as error:
        print(f"hotncold: error: {error}", file=sys.stderr)
        return 2
    try:  # it writes run.json: no run may be writing there meanwhile
        with lock.locked(rundir.path, "push"):
            entry = push_and_record(rundir, output)
    except ConfigError as error:
        print(f"hotncold: error: {error}", file=sys.stderr)
        return 2
    if "error" in entry:
        print(f"hotncold: error: push to {repo} failed: {entry['error']}", file=sys.stderr)
        return 1
    print(f"pushed {entry['rows']} rows as config {entry['config_name']} -> {entry['url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
