"""Run the benchmarks: `python -m benchmarks [name ...]` (all by default)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from benchmarks import best_of_n, grading, kv_cache, prm, rescore, search, train_prm

BENCHMARKS = {
    "best_of_n": best_of_n.main,
    "search": search.main,
    "prm": prm.main,
    "train_prm": train_prm.main,
    "grading": grading.main,
    "kv_cache": kv_cache.main,
    "rescore": rescore.main,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        choices=[*BENCHMARKS, []],
        metavar="name",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--out", default=".bench", help="folder for results.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = {name: BENCHMARKS[name]() for name in args.names or BENCHMARKS}
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results in {out / 'results.json'}")


if __name__ == "__main__":
    main()
