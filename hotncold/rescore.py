"""command: `python -m hotncold.rescore <run dir | sweep dir> prm=<option> [prm.*=...]
[batch_size=32] [out_dir=DIR]`

Scores the stored completions of every finished run in a run directory or sweep folder with
another PRM and writes one derived run per source run (default: `rescored/` beside them),
named from its config (the source's, scored by the new PRM), with its metrics recomputed and
`rescored_from`, `guided_by` and `scored_by` in run.json. Rerunning resumes. The `prm` group is
composed from hotncold/conf/prm/ as in a run, so `prm=skywork_1.5b` means the same here. The
logic is `hotncold.experiment.rescore`. Exit status: 0 when every run was re-scored, 2 on a
configuration error (one line naming the fix).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import hotncold.config.hydra  # noqa: F401  (registers the typed schemas)
from hotncold.config import ConfigError, PRMConfig, RescoreConfig
from hotncold.experiment.rescore import rescore
from hotncold.prm.registry import typed_merge

CONF = Path(__file__).resolve().parent / "conf"
USAGE = "usage: python -m hotncold.rescore <run dir | sweep dir> prm=<option> [prm.*=...]"


def compose_config(overrides: list[str]) -> RescoreConfig:
    """The typed config of `overrides`, composed by Hydra from conf/rescore.yaml (Hydra's
    global state is set up for the composition only)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="rescore"):
        cfg = compose(config_name="rescore", overrides=overrides)
    return OmegaConf.to_object(typed_merge(RescoreConfig(prm=PRMConfig()), cfg))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    paths = [a for a in args if "=" not in a]
    overrides = [a for a in args if "=" in a]
    if len(paths) != 1:
        print(
            f"{USAGE}\nhotncold.rescore: error: give one run directory or sweep folder",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = compose_config(overrides)
        derived = rescore(paths[0], cfg)
    except ConfigError as error:
        print(f"hotncold.rescore: error: {error}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as error:  # a bad option or key
        line = str(error).strip().splitlines()[0]
        print(f"hotncold.rescore: error: {line} (see python -m hotncold --help)", file=sys.stderr)
        return 2
    for job in derived:
        print(f"{job.source.path} -> {job.rundir.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
