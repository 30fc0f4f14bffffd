"""command: `python -m hotncold ...`: compose the config with Hydra and hand it to the plain
`hotncold.experiment.run.run` (config groups: hotncold/conf/, next to this file)."""

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

import hotncold.config.hydra  # noqa: F401  (registers the typed schemas and resolvers)
from hotncold.experiment.run import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):  # noqa: ANN001, ANN201  (Hydra passes a DictConfig)
    # a job of a sweep ends with one line; the sweep's analysis has the tables
    return run(cfg, in_sweep=HydraConfig.get().mode == RunMode.MULTIRUN)


if __name__ == "__main__":
    main()
