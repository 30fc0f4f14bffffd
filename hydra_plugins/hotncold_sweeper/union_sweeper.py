"""The union sweeper: Hydra's basic sweeper over a union of grids (`hydra/sweeper=union`).

Selected by hotncold/conf/hydra/sweeper/union.yaml (`override hydra/sweeper: union` in a
preset's defaults). The class lives here, not in `hotncold`, because Hydra instantiates
sweepers only from the `hydra_plugins` package; hotncold registers it with Hydra by hand as
well (`hotncold.config.hydra`), since Hydra's search of that package misses plugins of an
editable install (hydra#3252). What it launches is `hotncold.cluster.sweep_grids.sweep_jobs`,
the expansion `python -m hotncold.status`, `--resubmit` and `hotncold.prefetch` use too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hotncold.cluster.hydra_private import ListedJobsSweeper
from hotncold.cluster.sweep_grids import grid_of, grids_of, sweep_jobs


class UnionSweeper(ListedJobsSweeper):
    """Hydra's basic sweeper, launching a union of grids instead of one cross product.

    - `params` is the main grid, as for the basic sweeper (key -> sweep string).
    - `also` is a list of extra grids, each a mapping key -> sweep string like `params`. An
      extra grid is the main grid with its own keys replacing the main grid's values (keys the
      main grid lacks are added): `also: [{approach: adaptive_bon, temperature: multi}]` adds
      adaptive_bon x multi x every swept seed.
    - The jobs are the main grid's cross product, then each extra grid's, duplicates (the same
      override list) removed with the first kept.
    - Command-line values apply to every grid as to the basic sweeper's (a key given there
      replaces the grid's values for it, or is added). Where the command line gives one of an
      extra grid's OWN keys, the user chose that key's values: the grid keeps only the
      command line's values that it lists itself, and is dropped when it lists none of them.
      So `approach=dvts` runs DVTS jobs only (the adaptive grid is dropped), `seed=0,1,2`
      runs every grid at three seeds, and `temperature=multi` keeps `adaptive_bon x multi`
      beside the main grid's multi jobs. Every job then takes, for each key on the command
      line, a value given there, as in a basic sweep.
    """

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: Mapping[str, Any] | None = None,
        also: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=grid_of(params))
        self.also = grids_of(also)

    def jobs(self, arguments: list[str]) -> list[list[str]]:
        return sweep_jobs(self.config_loader, arguments, self.params, self.also)
