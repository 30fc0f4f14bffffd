"""command: `python -m hotncold.merge <sweep dir> [--out DIR] [--allow-incomplete]`

Joins the shards of every configuration in a sweep (runs with `dataset.num_shards=k`, one per
`dataset.shard`) into one result: completions.jsonl in dataset order, metrics.json recomputed
over all problems, config.yaml (the config with the shard axis removed, so the folder is named
as the unsharded run would be) and run.json (the shards it came from and their summed totals).
Before writing, it checks every shard is there and finished, that no problem appears twice and
that every problem of the dataset selection is present exactly once. It refuses an incomplete
group and names what is missing, unless --allow-incomplete is given. Exit status: 0 when every
group merged complete, 1 when a group was refused or merged incomplete.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hotncold.cluster.shards import merge_sweep
from hotncold.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hotncold.merge", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder (multirun/<sweep_name>)")
    parser.add_argument("--out", type=Path, help="where merged runs go (<sweep_dir>/merged)")
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="merge groups with missing shards or problems too (run.json says incomplete)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        groups = merge_sweep(args.sweep_dir, args.out, args.allow_incomplete)
    except ConfigError as error:
        print(f"hotncold: error: {error}", file=sys.stderr)
        return 2
    out = args.out or args.sweep_dir / "merged"
    for g in groups:
        done = len(g.records)
        if g.complete:
            print(f"merged {g.num_shards} shards, {done} problems -> {out / g.name}")
            continue
        verb = "merged INCOMPLETE" if args.allow_incomplete else "refused"
        print(f"{verb} {g.name}: {done} problems, {len(g.missing_uids)} missing", file=sys.stderr)
        for line in g.gaps:
            print(f"  {line}", file=sys.stderr)
    if not all(g.complete for g in groups):
        if not args.allow_incomplete:
            print(
                "finish the missing shards (python -m hotncold.status <sweep dir> --resubmit) "
                "or pass --allow-incomplete",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
