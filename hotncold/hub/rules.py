"""The rules of the `output` settings (pushing to the hub) that their types cannot express.

Run by `hotncold.experiment.validate` before anything loads, and by `python -m hotncold.push`.
What needs the network (token, write access) is `hotncold.hub.upload.preflight`.
"""

from __future__ import annotations

import re

from hotncold.config import ConfigError, OutputConfig

_SPLIT = re.compile(r"\w+(\.\w+)*")  # what `datasets` accepts as a split name


def check_output(o: OutputConfig) -> None:
    """Raise ConfigError naming the fix for a push that cannot work whatever the network says
    (also run by `python -m hotncold.push`)."""
    if o.push_to_hub and not o.hub_dataset_id:
        raise ConfigError(
            "output.push_to_hub=true needs output.hub_dataset_id=<owner>/<name> "
            "(the dataset repository to push to)"
        )
    repo = o.hub_dataset_id
    if repo is not None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            # the owner is required: a bare name would land in whatever account the token is
            if repo.count("/") != 1:
                raise HFValidationError("no owner")
            validate_repo_id(repo)
        except HFValidationError:
            raise ConfigError(
                f"output.hub_dataset_id={repo!r} is not a hub repository id; use <owner>/<name> "
                "(letters, digits, '-', '_', '.'), e.g. output.hub_dataset_id=my-org/hotncold-runs"
            ) from None
    if not _SPLIT.fullmatch(o.hub_split):
        raise ConfigError(
            f"output.hub_split={o.hub_split!r} is not a split name; use letters, digits and _ "
            "(e.g. train)"
        )
