"""The jobs of a sweep, as the sweeper that ran it launches them: one expansion for all users.

Hydra's basic sweeper (the default) launches the cross product of `hydra.sweeper.params` and
the command line's values. hotncold's union sweeper (`hydra/sweeper=union`, the class in
hydra_plugins/hotncold_sweeper/union_sweeper.py, whose docstring states the rules) launches a
union of such grids: the main one, then each of `hydra.sweeper.also`. `sweep_jobs` is the one
expansion: the union sweeper launches what it returns, and `cluster.sweep.expected_jobs`
(status, resubmit), `cluster.prefetch` and the tests list a sweep's jobs with it, so the jobs a
sweep launched and the jobs its folder is checked against cannot differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from hotncold.cluster import hydra_private
from hotncold.config import ConfigError

UNION_SWEEPER = "hydra_plugins.hotncold_sweeper.union_sweeper.UnionSweeper"
"""The `_target_` of hotncold's union sweeper (hotncold/conf/hydra/sweeper/union.yaml)."""

Grid = dict[str, str]
"""A grid: override key -> sweep string (`approach: best_of_n,dvts`), as `hydra.sweeper.params`."""


ALSO_EXAMPLE = "also: [{approach: adaptive_bon, temperature: multi}]"


def grid_of(
    params: Mapping[str, Any] | None,
    where: str = "hydra.sweeper.params",
    example: str = "params: {approach: best_of_n,dvts, seed: 0,1}",
) -> Grid:
    """`params` (from YAML or a DictConfig) as a grid of strings; None is the empty grid."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):  # a DictConfig is one
        raise ConfigError(
            f"{where} must map override keys to sweep values ({example}); got {params!r}"
        )
    return {str(key): _sweep_string(value) for key, value in params.items()}


def grids_of(also: Sequence[Mapping[str, Any]] | None) -> list[Grid]:
    """`hydra.sweeper.also` as a list of non-empty grids (one-line error otherwise)."""
    if also is None:
        return []
    if isinstance(also, str | Mapping) or not isinstance(also, Sequence):
        raise ConfigError(
            f"hydra.sweeper.also must be a list of grids ({ALSO_EXAMPLE}); got {also!r}"
        )
    grids = [grid_of(g, "each grid of hydra.sweeper.also", ALSO_EXAMPLE) for g in also]
    if not all(grids):
        raise ConfigError(f"hydra.sweeper.also holds an empty grid; give its keys ({ALSO_EXAMPLE})")
    return grids


def sweep_jobs(
    config_loader: ConfigLoader,
    arguments: Sequence[str],
    params: Mapping[str, Any] | None = None,
    also: Sequence[Mapping[str, Any]] | None = None,
) -> list[list[str]]:
    """Every job of a sweep, in launch order: its override lists.

    `arguments` are the command line's overrides (`hydra.overrides.task`), `params` the main
    grid (`hydra.sweeper.params`). With `also` None, the basic sweeper's jobs: the cross
    product, exactly as it launches them. With `also` a list of grids (the union sweeper's,
    even an empty one), the union: the main grid's jobs, then each extra grid's, where an extra
    grid is `params` with the grid's own keys replacing theirs (keys it adds come after them);
    the command line applies to every grid as to the main one (its value for a key replaces the
    grid's); where it gives one of an extra grid's own keys, the grid keeps only the jobs whose
    value for that key the grid itself lists (none left: the grid adds nothing); duplicates
    (the same override list) are removed, the first one kept. The rules and their reasons:
    `UnionSweeper`'s docstring (hydra_plugins/hotncold_sweeper/union_sweeper.py).
    """
    main = grid_of(params)
    jobs = _cross(config_loader, main, arguments)
    if also is None:
        return jobs
    parser = OverridesParser.create(config_loader=config_loader)
    given = {o.get_key_element() for o in parser.parse_overrides(list(arguments))}
    for grid in grids_of(also):
        # each own key the command line also gives: the entries ("key=value") the grid allows
        allowed = [
            {entry for (entry,) in _cross(config_loader, {key: value}, [])}
            for key, value in grid.items()
            if parser.parse_override(f"{key}={value}").get_key_element() in given
        ]
        for job in _cross(config_loader, {**main, **grid}, arguments):
            if all(not entries.isdisjoint(job) for entries in allowed):
                jobs.append(job)
    return [list(job) for job in dict.fromkeys(tuple(job) for job in jobs)]


def sweeper_jobs(
    config_loader: ConfigLoader, sweeper: DictConfig, arguments: Sequence[str]
) -> list[list[str]]:
    """The jobs of a sweep run by the sweeper `sweeper` (a composed or stored `hydra.sweeper`)
    with the command line's overrides `arguments`: the basic sweeper's or the union sweeper's."""
    target = sweeper.get("_target_")
    if target == hydra_private.BASIC_SWEEPER:
        return sweep_jobs(config_loader, arguments, sweeper.get("params"))
    if target == UNION_SWEEPER:
        return sweep_jobs(
            config_loader, arguments, sweeper.get("params"), sweeper.get("also") or []
        )
    raise ConfigError(
        f"the sweep was run by {target}; hotncold lists the jobs of Hydra's basic sweeper (the "
        "default) and of its union sweeper (hydra/sweeper=union) only"
    )


def _cross(config_loader: ConfigLoader, grid: Grid, arguments: Sequence[str]) -> list[list[str]]:
    return hydra_private.expand(config_loader, [*(f"{k}={v}" for k, v in grid.items()), *arguments])


def _sweep_string(value: Any) -> str:
    # as Hydra's basic sweeper writes its params (f"{key}={value}"): YAML's 0 is "0"
    return str(value)
