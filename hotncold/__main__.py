"""command: `python -m hotncold ...`: compose the config with Hydra and hand it to the plain
`hotncold.experiment.run.run` (config groups: hotncold/conf/, next to this file)."""

import hydra

import hotncold.config.hydra  # noqa: F401  (registers the typed schemas and resolvers)
from hotncold.experiment.run import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):  # noqa: ANN001, ANN201  (Hydra passes a DictConfig)
    return run(cfg)


if __name__ == "__main__":
    main()
