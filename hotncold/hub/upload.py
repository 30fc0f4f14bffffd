"""Pushing a finished run to the Hugging Face Hub: one config of a dataset repository per run.

Each run becomes the config named after it, its rows the flat table of `hotncold.hub.table`;
its run.json, metrics.json and config.yaml go under `runs/<run name>/` (a config holds only
data files). `preflight` checks before any model loads that a push can work (network, token,
write access); `push_run` pushes; `push_and_record` pushes and records the outcome in run.json
(a failure never fails the finished run). `python -m hotncold.push` pushes a finished run later.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from hotncold.config import ConfigError, OutputConfig
from hotncold.experiment.rundir import RunDir, now, write_json
from hotncold.hub.table import flat_table, run_name_of

log = logging.getLogger(__name__)

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Variables that put huggingface_hub or datasets offline (TRANSFORMERS_OFFLINE does both)."""
TRUE_VALUES = ("1", "ON", "YES", "TRUE")
"""What huggingface_hub and datasets read as set."""
WHOAMI_TIMEOUT_S = 10.0
"""How long the pre-flight waits for the hub before calling it unreachable."""
RUN_FILES = ("run.json", "metrics.json", "config.yaml")
"""Run files uploaded next to the data, under `runs/<run name>/`."""


def preflight(output: OutputConfig) -> None:
    """When `output.push_to_hub`: ConfigError (one line) unless the hub answers and accepts the
    token for `output.hub_dataset_id`, so a run never computes for hours and then cannot push."""
    if output.push_to_hub:
        repo = str(output.hub_dataset_id)
        check_hub(repo, "output.push_to_hub=true", f"`python -m hotncold.push <run dir> {repo}`")


def check_hub(repo_id: str, who: str, later: str | None = None) -> dict[str, Any]:
    """The token owner's `whoami` answer, after checking that a push to `repo_id` can work;
    `who` starts the error lines, `later` names the command that pushes later."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session

    for var in OFFLINE_VARS:
        value = os.environ.get(var, "")
        if value.upper() in TRUE_VALUES:
            raise ConfigError(
                f"{who} needs the network but {var}={value} is set; unset it"
                + (f" or push later with {later}" if later else "")
            )
    token = huggingface_hub.get_token()
    if token is None:
        raise ConfigError(
            f"{who} needs a Hugging Face token with write access; "
            "run `hf auth login` or set HF_TOKEN"
        )
    endpoint = constants.ENDPOINT
    url = f"{endpoint}/api/whoami-v2"
    try:
        response = get_session().get(
            url, headers=build_hf_headers(token=token), timeout=WHOAMI_TIMEOUT_S
        )
    except Exception as error:  # any transport failure means the same: no answer
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(
            f"{who}: the hub at {endpoint} does not answer ({reason}); check the network or "
            "HF_ENDPOINT" + (f", or push later with {later}" if later else "")
        ) from None
    if response.status_code == 401:
        raise ConfigError(
            f"{who}: the hub at {endpoint} rejects the token; renew it with "
            "`hf auth login --force` or fix HF_TOKEN (it takes precedence)"
        )
    if response.status_code == 429:
        # whoami is rate-limited on purpose; many jobs of a sweep starting together can hit the
        # limit. The hub answered, which is what matters most: go on, the push will tell.
        log.warning("%s is rate-limited (HTTP 429); the token is not checked", url)
        return {}
    if response.status_code >= 400:
        raise ConfigError(
            f"{who}: {url} answered HTTP {response.status_code}; try again later"
            + (f" or push later with {later}" if later else "")
        )
    me = response.json()
    name = me.get("name")
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise ConfigError(
            f"{who}: the token of {name} is read-only; create a write token "
            "(https://huggingface.co/settings/tokens) and run `hf auth login --force`"
        )
    owner = repo_id.split("/")[0]
    orgs = [o.get("name") for o in me.get("orgs") or []]
    if owner not in (name, *orgs):
        raise ConfigError(
            f"{who}: the token belongs to {name}, who cannot write to {repo_id} "
            f"(member of: {', '.join(orgs) or 'no organization'}); use "
            f"{name}/<name> or a token of a member of {owner}"
        )
    return me


def finished_run(run_dir: str | Path) -> RunDir:
    """The run directory, or ConfigError unless its run finished."""
    rundir = RunDir(run_dir)
    if not rundir.info.is_file():
        raise ConfigError(f"{rundir.path} holds no run.json; give a run directory")
    status = rundir.read_info().get("status")
    if status != "finished":
        raise ConfigError(
            f"{rundir.path} is not finished (status {status!r}); rerun its command to finish it "
            "before pushing"
        )
    return rundir


def push_run(
    run_dir: str | Path, repo_id: str, private: bool = True, split: str = "train"
) -> dict[str, Any]:
    """Push a finished run as config `<run name>` of dataset `repo_id`, with its run files
    under `runs/<run name>/`; returns what `record_push` stores."""
    from huggingface_hub import HfApi

    rundir = finished_run(run_dir)
    table = flat_table(rundir.path)
    name = run_name_of(rundir)
    log.info("pushing %d rows of %s to %s (config %s)", len(table), rundir.path, repo_id, name)
    table.push_to_hub(
        repo_id,
        config_name=name,
        split=split,
        private=private,
        commit_message=f"hotncold run {name}",
    )
    with tempfile.TemporaryDirectory() as tmp:
        # a snapshot: run.json keeps changing (the push record is added after this upload)
        for file in RUN_FILES:
            if (rundir.path / file).is_file():
                (Path(tmp) / file).write_bytes((rundir.path / file).read_bytes())
        HfApi().upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=tmp,
            path_in_repo=f"runs/{name}",
            commit_message=f"hotncold run {name}: run files",
        )
    from huggingface_hub import constants

    return {
        "repo": repo_id,
        "config_name": name,
        "split": split,
        "rows": len(table),
        "url": f"{constants.ENDPOINT}/datasets/{repo_id}/viewer/{name}",
        "pushed_at": now(),
    }


def record_push(rundir: RunDir, entry: dict[str, Any]) -> None:
    """Store the latest push (or its error) as run.json's `hub`."""
    info = rundir.read_info()
    info["hub"] = entry
    write_json(rundir.info, info)


def push_and_record(rundir: RunDir, output: OutputConfig) -> dict[str, Any]:
    """Push a finished run and record the result (or the error) in run.json's `hub`. A failure
    is logged and recorded, never raised: the run is finished and stays so."""
    repo = str(output.hub_dataset_id)
    try:
        entry = push_run(rundir.path, repo, private=output.hub_private, split=output.hub_split)
    except Exception as error:
        line = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        log.error(
            "push to %s failed (%s); the run is finished and kept in %s; push it later with "
            "`python -m hotncold.push %s %s`",
            repo,
            line,
            rundir.path,
            rundir.path,
            repo,
        )
        entry = {
            "repo": repo,
            "config_name": run_name_of(rundir),
            "error": line,
            "failed_at": now(),
        }
    else:
        log.info("pushed to %s", entry["url"])
    record_push(rundir, entry)
    return entry
