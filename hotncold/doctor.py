"""command: `python -m hotncold.doctor [--no-smoke] [overrides ...]`: check this node.

One screen: platform (CPU/GPU, driver, CUDA, vLLM against the supported range, GPU memory), the
hub (login, access to the gated models of the composed config, what is cached), whether the
composed generator and PRM fit in memory, and a smoke run of every engine path on tiny models.
The overrides compose the config as `python -m hotncold` does (model=..., prm=...,
cluster=slurm_a100, experiment=...). Exit status 0 only when every check passes. The logic is
`hotncold.diagnostics`.
"""

import os
import sys
import warnings

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import hotncold.config.hydra  # noqa: F401  (registers the typed schemas)
from hotncold.cluster.sweep import CONF_DIR
from hotncold.config import ConfigError
from hotncold.diagnostics import FAIL, run_doctor
from hotncold.experiment.run import to_config
from hotncold.experiment.validate import validate

USAGE = __doc__.split("\n\n", 1)[1]


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print("usage: python -m hotncold.doctor [--no-smoke] [overrides ...]\n\n" + USAGE)
        return 0
    # one screen: vLLM's engine processes inherit these and keep their warnings to themselves
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.simplefilter("ignore")
    with_smoke = "--no-smoke" not in argv
    overrides = [a for a in argv if a != "--no-smoke"]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            composed = compose("config", overrides=overrides)
        plain = OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"])
        plain.overrides, plain.out_dir, plain.run_name = overrides, "", ""
        cfg = to_config(plain)
        validate(cfg)
    except ConfigError as error:
        print(f"hotncold.doctor: error: {error}")
        return 2
    checks = run_doctor(cfg, with_smoke=with_smoke)
    return 1 if any(c.status == FAIL for c in checks) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
