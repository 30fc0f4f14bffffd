"""command: `python -m hotncold.train_prm ...`: compose the `train` group and hand it to the plain
`hotncold.train_prm.run.run` (config: hotncold/conf/train_prm.yaml)."""

import hydra

import hotncold.config.hydra  # noqa: F401  (registers the typed schemas and resolvers)
from hotncold.train_prm.run import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_prm")
def main(cfg):  # noqa: ANN001, ANN201  (Hydra passes a DictConfig)
    return run(cfg)


if __name__ == "__main__":
    main()
