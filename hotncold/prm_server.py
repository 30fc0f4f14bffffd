"""command: `python -m hotncold.prm_server prm=...`: serve one PRM over HTTP.

The Hydra edge of the server (its logic is `hotncold.prm.http_server`): it composes the same
`prm` (and `model`) groups as the main app, so `prm=rlhflow_8b prm.model_path=...` means the
same thing here as in a run.
"""

import hydra

import hotncold.config.hydra  # noqa: F401  (registers the typed schemas)
from hotncold.config import ConfigError
from hotncold.prm.http_server import serve


@hydra.main(version_base="1.3", config_path="conf", config_name="prm_server")
def main(cfg):  # noqa: ANN001, ANN201  (Hydra passes a DictConfig)
    try:
        serve(cfg)
    except ConfigError as error:
        raise SystemExit(f"hotncold.prm_server: error: {error}") from None


if __name__ == "__main__":
    main()
