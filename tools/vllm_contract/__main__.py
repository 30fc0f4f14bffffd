"""`python -m tools.vllm_contract`: check hotncold's vLLM contract against CUDA vLLM releases.

By default it checks:
1. the code: every vLLM use in hotncold/ and benchmarks/ is in contract.toml, and every entry
   there is used (offline, from the source);
2. the oldest and the newest PyPI release in the supported range (hotncold/engine/vllm_versions.py):
   every entry must hold;
3. releases below the floor (the newest one below it, and 0.19.0): each must FAIL, or the
   floor is lower than the range says.

Sources are read from the wheels with HTTP range requests and cached under
~/.cache/hotncold/vllm-sources/<version>/ (HOTNCOLD_CACHE moves it); `--offline` uses only
the cache. Exit status 0 only when all of that holds. Needs only the standard library.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hotncold.engine import vllm_versions
from hotncold.engine.vllm_versions import release_key
from tools.vllm_contract import sources, usage
from tools.vllm_contract.contract import CONTRACT, Contract, Report, check, load
from tools.vllm_contract.resolve import DirFiles, Release

ROOT = Path(__file__).resolve().parents[2]
BELOW_FLOOR_EXAMPLES = ("0.19.0",)
"""Releases that must fail besides the newest one below the floor: 0.19 lacks
SamplingParams.logprob_token_ids (issue 13's example)."""


REEXPORT_FOLDERS = ("vllm/entrypoints", "vllm/inputs", "vllm/engine", "vllm/v1")
"""Where `vllm/__init__.py`'s lazy exports point: fetched with the rest to save round trips."""


def prefetch_for(contract_modules: set[str]) -> Callable[[str], bool]:
    """Members to fetch in one go: the .py files of every package the contract names (the
    rest, such as the module a re-export points to, comes on demand)."""
    folders = {m.replace(".", "/").rpartition("/")[0] or "vllm" for m in contract_modules}
    folders |= {m.replace(".", "/") for m in contract_modules}
    folders |= set(REEXPORT_FOLDERS)

    def wanted(name: str) -> bool:
        if not name.endswith(".py"):
            return name.endswith(".dist-info/METADATA")
        return name.rpartition("/")[0] in folders

    return wanted


def contract_modules(contract: Contract) -> set[str]:
    names = {target.partition(":")[0] for target in contract.classes.values()}
    for entry in contract.entries:
        if entry.kind in ("import", "behaviour"):
            names.add(entry.of.partition(":")[0])
    return names


def check_release(
    version: str, contract: Contract, cache: Path, offline: bool
) -> tuple[Report, sources.SourceTree]:
    tree = sources.open_release(
        version, cache, offline=offline, prefetch=prefetch_for(contract_modules(contract))
    )
    report = check(contract, Release(tree, version), version)
    return report, tree


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.vllm_contract", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "versions",
        nargs="*",
        help="check these releases instead of the oldest and newest supported",
    )
    parser.add_argument("--all", action="store_true", help="check every supported release")
    parser.add_argument(
        "--below",
        nargs="*",
        default=None,
        help="releases that must fail (default: the newest below the floor, and 0.19.0)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        help="also check an installed vLLM: the folder holding vllm/ (e.g. a venv's site-packages)",
    )
    parser.add_argument(
        "--range",
        default=vllm_versions.VLLM_RANGE,
        help="supported range (hotncold/engine/vllm_versions.py)",
    )
    parser.add_argument("--contract", type=Path, default=CONTRACT)
    parser.add_argument(
        "--cache", type=Path, default=None, help="default ~/.cache/hotncold/vllm-sources"
    )
    parser.add_argument(
        "--offline", action="store_true", help="use only cached sources and package index data"
    )
    parser.add_argument("--refresh", action="store_true", help="re-read the release list now")
    parser.add_argument("--no-code", action="store_true", help="skip the check of hotncold's code")
    parser.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    return parser.parse_args(argv)


def print_report(report: Report, heading: str, must_fail: bool, verbose: bool) -> bool:
    """Print one release's result; True when it is what it must be."""
    failed = f"{len(report.failures)} of {len(report.results)} checks"
    if must_fail and report.ok:
        print(
            f"{heading}: all {len(report.results)} checks pass, so the floor is too high: "
            "lower it, or add the use that needs it to the contract"
        )
    elif must_fail:
        print(f"{heading}: fails as it must, {failed}:")
    elif report.ok:
        print(f"{heading}: ok, {len(report.results)} checks")
    else:
        print(f"{heading}: {failed} FAIL:")
    for result in report.results:
        if not result.ok or verbose:
            print(f"  {result.line()}")
    return report.ok != must_fail


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    cache = args.cache or sources.default_cache()
    contract = load(args.contract)
    shown = args.contract.relative_to(ROOT) if args.contract.is_relative_to(ROOT) else args.contract
    print(f"vLLM contract {shown}: {len(contract.entries)} uses; supported vllm{args.range}")
    ok = True

    if not args.no_code:
        uses = usage.scan(contract, ROOT)
        drift = usage.compare(contract, uses)
        if drift.ok:
            print(f"code: {len(uses)} vLLM uses in hotncold/ and benchmarks/, all in the contract")
        else:
            ok = False
            print("code: the contract and the code disagree:")
            for line in drift.lines(str(shown)):
                print(f"  {line}")

    for tree_root in args.tree:
        report = check(contract, Release(DirFiles(tree_root), str(tree_root)), str(tree_root))
        ok &= print_report(report, f"installed vllm in {tree_root}", False, args.verbose)

    try:
        index = sources.project_json(cache, refresh=args.refresh, offline=args.offline)
    except sources.FetchError as error:
        print(f"cannot read the package index: {error}")
        return 2
    available = sources.releases(index)
    supported = [v for v in available if vllm_versions.supported(v, args.range)]
    if not supported:
        print(f"no release on the package index lies in vllm{args.range}")
        return 2
    if args.versions:
        targets, below = args.versions, args.below or []
    else:
        targets = supported if args.all else sorted({supported[0], supported[-1]}, key=release_key)
        if args.below is None:
            floor = release_key(vllm_versions.floor(args.range))
            lower = [v for v in available if release_key(v) < floor]
            below = sorted({*lower[-1:], *BELOW_FLOOR_EXAMPLES}, key=release_key)
        else:
            below = args.below
    roles = {supported[0]: "oldest supported", supported[-1]: "newest supported"}

    fetched = sources.FetchStats()
    for version in [*targets, *(v for v in below if v not in targets)]:
        must_fail = version in below
        role = "below the floor" if must_fail else roles.get(version, "checked")
        try:
            report, tree = check_release(version, contract, cache, args.offline)
        except sources.FetchError as error:
            print(f"vllm {version} ({role}): cannot read its sources: {error}")
            ok = False
            continue
        for name in ("requests", "bytes", "members"):
            setattr(fetched, name, getattr(fetched, name) + getattr(tree.stats, name))
        heading = f"vllm {version} ({role}, {tree.release.filename})"
        ok &= print_report(report, heading, must_fail, args.verbose)

    seconds = time.perf_counter() - started
    network = (
        f"fetched {fetched.members} files in {fetched.requests} range requests "
        f"({fetched.bytes / 1e6:.1f} MB)"
        if fetched.requests
        else "all sources from the cache"
    )
    print(f"{'ok' if ok else 'FAILED'} in {seconds:.1f} s; {network}; cache {cache}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
