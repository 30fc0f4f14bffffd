"""Results as plain data and on the hub: loading run files, the flat table, `output.push_to_hub`.

Nothing here reaches the network: the hub is played by a local HTTP server (tests/hub_stand_in.py)
that the real clients talk to, huggingface_hub and `datasets` pointed at it as `HF_ENDPOINT`
points them. So a push here is the real one down to the HTTP requests (repository creation, LFS
upload, commits, the card), and what it stored is read back with `datasets.load_dataset`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import huggingface_hub
import pandas as pd
import pytest
import yaml
from conftest import ROOT, tiny_model_config
from fakes import ScriptedEngine
from hub_stand_in import HubStandIn
from huggingface_hub import constants
from test_run import solver

import hotncold.engine.vllm_engine
from hotncold import push
from hotncold.config import (
    ApproachConfig,
    Config,
    ConfigError,
    DatasetConfig,
    ModelConfig,
    OutputConfig,
    TemperatureConfig,
)
from hotncold.experiment.naming import run_name
from hotncold.experiment.run import execute
from hotncold.experiment.rundir import RunDir
from hotncold.experiment.validate import validate
from hotncold.hub import table as flat
from hotncold.hub import upload as hub

REPO = "hnc-lab/runs"


@pytest.fixture
def engine(monkeypatch):
    fake = ScriptedEngine(solver)
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: fake)
    return fake


def config(tmp_path: Path, **kw) -> Config:
    """A run as Hydra makes it: named from its resolved config, in a folder of that name."""
    cfg = Config(
        n=4,
        batch_size=5,
        dataset=DatasetConfig(per_level=2),
        temperature=TemperatureConfig(values=[0.4, 1.2]),
        **kw,
    )
    cfg.run_name = run_name(dataclasses.asdict(cfg))
    cfg.out_dir = str(tmp_path / cfg.run_name)
    return cfg


def read_info(cfg: Config) -> dict:
    return json.loads((Path(cfg.out_dir) / "run.json").read_text())


# --- configuration ---------------------------------------------------------------------------


def test_push_needs_a_repository():
    cfg = Config(output=OutputConfig(push_to_hub=True))
    with pytest.raises(ConfigError, match=r"needs output\.hub_dataset_id=<owner>/<name>"):
        validate(cfg)


@pytest.mark.parametrize(
    "repo", ["runs", "a/b/c", "-org/runs", "org/runs-", "org/ru..ns", "org/my runs", "org/x.git"]
)
def test_malformed_repository_ids_are_refused(repo):
    cfg = Config(output=OutputConfig(push_to_hub=True, hub_dataset_id=repo))
    with pytest.raises(ConfigError, match=r"not a hub repository id; use <owner>/<name>") as e:
        validate(cfg)
    assert "\n" not in str(e.value)


def test_bad_split_is_refused_and_good_output_passes():
    with pytest.raises(ConfigError, match=r"output\.hub_split='train set'"):
        validate(Config(output=OutputConfig(hub_split="train set")))
    validate(Config(output=OutputConfig(push_to_hub=True, hub_dataset_id="my-org/hnc.runs_1")))


def test_output_never_changes_the_run_name_or_blocks_a_resume(tmp_path):
    plain = Config(out_dir=str(tmp_path / "run"))
    pushed = Config(
        out_dir=str(tmp_path / "run"),
        output=OutputConfig(push_to_hub=True, hub_dataset_id=REPO, hub_private=False),
    )
    assert run_name(dataclasses.asdict(plain)) == run_name(dataclasses.asdict(pushed))
    RunDir(plain.out_dir).prepare(plain)
    RunDir(pushed.out_dir).prepare(pushed)  # same results: the folder is accepted


def test_output_overrides_compose_with_the_defaults():
    from hydra import compose, initialize_config_dir

    import hotncold.config.hydra  # noqa: F401

    plain = ["out_dir=/tmp/hotncold-test", "overrides=[]"]
    with initialize_config_dir(config_dir=str(ROOT / "hotncold" / "conf"), version_base="1.3"):
        base = compose("config", overrides=plain)
        pushed = compose(
            "config", overrides=[*plain, "output.push_to_hub=true", f"output.hub_dataset_id={REPO}"]
        )
    assert base.output.push_to_hub is False and base.output.hub_private is True
    assert pushed.output.hub_dataset_id == REPO
    assert pushed.run_name == base.run_name


# --- pre-flight ------------------------------------------------------------------------------


@pytest.fixture
def online(monkeypatch, tmp_path):
    """A token and a reachable hub (the stand-in), with the offline variables unset: in the
    environment (for commands run here) and in what the libraries read from it at import."""
    stand_in = HubStandIn()
    for var in hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    env = {
        "HF_ENDPOINT": stand_in.url,
        "HF_TOKEN": "hf_stand_in_token",
        "HF_HUB_DISABLE_XET": "1",  # the stand-in speaks LFS (see hub_stand_in.py)
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(constants, "ENDPOINT", stand_in.url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        stand_in.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HOME", env["HF_HOME"])
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", env["HF_HOME"] + "/token")  # no saved token
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", env["HF_HOME"] + "/stored_tokens")
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", stand_in.url)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    yield stand_in
    stand_in.close()


def whoami_calls(stand_in: HubStandIn) -> list[tuple[str, str | None]]:
    return [
        (r.path, r.headers.get("authorization"))
        for r in stand_in.requests
        if r.path == "/api/whoami-v2"
    ]


PUSH = OutputConfig(push_to_hub=True, hub_dataset_id=REPO)


@pytest.mark.parametrize("var", hub.OFFLINE_VARS)
def test_preflight_refuses_offline_mode(monkeypatch, var):
    for other in hub.OFFLINE_VARS:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(var, "1")
    with pytest.raises(ConfigError) as e:
        hub.preflight(PUSH)
    assert str(e.value) == (
        f"output.push_to_hub=true needs the network but {var}=1 is set; unset it or push later "
        f"with `python -m hotncold.push <run dir> {REPO}`"
    )


def test_run_with_push_fails_offline_before_anything_loads(tmp_path, engine):
    # conftest keeps HF_HUB_OFFLINE=1, as a cluster node without network would have
    cfg = config(tmp_path, output=PUSH)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE=1 is set"):
        execute(cfg)
    assert engine.calls == [] and not Path(cfg.out_dir).exists()


def test_preflight_without_a_token_says_how_to_log_in(online, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    assert huggingface_hub.get_token() is None  # HF_HOME is empty: no saved token either
    with pytest.raises(ConfigError, match=r"run `hf auth login` or set HF_TOKEN"):
        hub.preflight(PUSH)
    assert online.requests == []


def test_preflight_accepts_a_write_token_of_the_owner_or_its_organization(online):
    hub.preflight(OutputConfig(push_to_hub=True, hub_dataset_id="alice/runs"))
    online.orgs = ["hnc-lab"]
    assert hub.check_hub(REPO, "test")["name"] == "alice"
    assert whoami_calls(online) == [("/api/whoami-v2", "Bearer hf_stand_in_token")] * 2


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"error": "Invalid credentials"}, r"rejects the token; renew it with `hf auth"),
        (503, {}, r"/api/whoami-v2 answered HTTP 503; try again later or push later with"),
        (
            200,
            {"name": "alice", "auth": {"accessToken": {"role": "read"}}},
            r"the token of alice is read-only; create a write token",
        ),
        (
            200,
            {"name": "alice", "orgs": [{"name": "other"}]},
            r"belongs to alice, who cannot write to hnc-lab/runs \(member of: other\)",
        ),
    ],
)
def test_preflight_refuses_what_the_hub_would_refuse(online, status, body, message):
    online.whoami = (status, body)
    with pytest.raises(ConfigError, match=message):
        hub.preflight(PUSH)


def test_preflight_lets_a_rate_limited_whoami_pass(online, caplog):
    online.whoami = (429, {"error": "rate limited"})
    hub.preflight(PUSH)  # many sweep jobs starting at once must not fail for it
    assert "rate-limited (HTTP 429)" in caplog.text


def test_preflight_names_the_endpoint_that_does_not_answer(online, monkeypatch):
    online.close()  # nothing listens on that port any more
    with pytest.raises(ConfigError) as e:
        hub.preflight(PUSH)
    assert f"the hub at {online.url} does not answer" in str(e.value)
    assert "\n" not in str(e.value)


# --- plain files and the flat table ----------------------------------------------------------


@pytest.fixture
def finished(tmp_path, engine) -> Config:
    cfg = config(tmp_path)
    execute(cfg)
    return cfg


def test_run_files_load_with_datasets_and_pandas(finished, tmp_path):
    path = Path(finished.out_dir) / "completions.jsonl"
    table = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert table.num_rows == 10 and set(table.column_names) >= {"uid", "problem", "completions"}
    assert len(table[0]["completions"]) == 4 and table[0]["problem"]["level"] == 1
    frame = pd.read_json(path, lines=True)
    assert list(frame["uid"]) == table["uid"]
    metrics = pd.read_json(Path(finished.out_dir) / "metrics.json", typ="series")
    assert metrics["budgets"] == [1, 2, 4]


def test_flat_table_has_one_row_per_problem_and_completion(finished):
    records = [
        json.loads(line)
        for line in (Path(finished.out_dir) / "completions.jsonl").read_text().splitlines()
    ]
    table = flat.flat_table(finished.out_dir)
    assert table.num_rows == 10 * 4
    assert table.column_names == list(flat.features())
    rows = table.to_list()
    for row, (record, index) in zip(
        rows, [(r, i) for r in records for i in range(len(r["completions"]))]
    ):
        c = record["completions"][index]
        assert row["uid"] == record["uid"] and row["completion_index"] == index
        assert row["problem"] == record["problem"]["problem"]
        assert row["gold_answer"] == record["problem"]["answer"]
        assert row["level"] == record["problem"]["level"]
        assert row["prompt"] == record["prompt"]
        assert (row["text"], row["steps"], row["step_scores"]) == (
            c["text"],
            c["steps"],
            c["step_scores"],
        )
        assert (row["extracted_answer"], row["correct"], row["score"]) == (
            c["answer"],
            c["correct"],
            c["score"],
        )
        assert row["temperature"] == c["temperature"] and json.loads(row["extra"]) == c["extra"]
    first = rows[0]
    assert first["run_name"] == finished.run_name
    assert (first["approach"], first["temperature_tag"], first["n"], first["seed"]) == (
        "best_of_n",
        "T0.4-1.2",
        4,
        0,
    )
    assert (first["model"], first["prm"], first["agg_strategy"], first["dataset"]) == (
        "smollm2_135m",
        "equation_checker",
        "min",
        "arithmetic",
    )
    assert {r["temperature"] for r in rows} == {0.4, 1.2}
    assert sum(r["correct"] for r in rows) == 20  # the solver is right on every other sample


def test_flat_table_round_trips_through_parquet(finished, tmp_path):
    table = flat.flat_table(finished.out_dir)
    path = tmp_path / "flat.parquet"
    table.to_parquet(str(path))
    again = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert again.features == table.features
    assert again.to_list() == table.to_list()
    assert pd.read_parquet(path).shape == (table.num_rows, len(table.column_names))


# --- pushing ---------------------------------------------------------------------------------


def pushed_files(stand_in: HubStandIn, repo_id: str, name: str, split: str = "train") -> dict:
    """What the hub holds for run `name` after its push, checked against the layout pushed."""
    repo = stand_in.repo(repo_id)
    assert sorted(repo.files) == [
        "README.md",
        f"{name}/{split}-00000-of-00001.parquet",
        f"runs/{name}/config.yaml",
        f"runs/{name}/metrics.json",
        f"runs/{name}/run.json",
    ]
    # two commits: the data with its card, then the run files
    assert [c["summary"] for c in repo.commits] == [
        f"hotncold run {name}",
        f"hotncold run {name}: run files",
    ]
    card = repo.files["README.md"].decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["configs"] == [
        {"config_name": name, "data_files": [{"split": split, "path": f"{name}/{split}-*"}]}
    ]
    return repo.files


def test_finished_run_is_pushed_as_the_config_named_after_it(tmp_path, engine, online):
    cfg = config(tmp_path, output=OutputConfig(push_to_hub=True, hub_dataset_id="alice/runs"))
    execute(cfg)
    name = cfg.run_name
    assert online.unknown == []
    assert online.repo("alice/runs").visibility == "private"
    files = pushed_files(online, "alice/runs", name)
    assert json.loads(files[f"runs/{name}/run.json"])["status"] == "finished"
    assert yaml.safe_load(files[f"runs/{name}/config.yaml"])["run_name"] == name
    assert files[f"runs/{name}/metrics.json"] == (Path(cfg.out_dir) / "metrics.json").read_bytes()
    # what a reader of the hub gets: the config named after the run, the flat table's rows,
    # read by another process as a reader would (the environment points it at the stand-in)
    back = read_back("alice/runs", name, tmp_path / "cache")
    assert len(back) == 40 and back[0]["run_name"] == name
    assert back == json.loads(json.dumps(flat.flat_table(Path(cfg.out_dir)).to_list()))
    info = read_info(cfg)
    assert info["status"] == "finished"
    assert info["hub"]["repo"] == "alice/runs" and info["hub"]["config_name"] == name
    assert info["hub"]["url"] == f"{online.url}/datasets/alice/runs/viewer/{name}"
    assert info["hub"]["rows"] == 40 and "error" not in info["hub"]


def test_failed_push_leaves_the_run_finished_and_records_why(tmp_path, engine, online):
    online.failing["commit"] = 503
    cfg = config(tmp_path, output=OutputConfig(push_to_hub=True, hub_dataset_id="alice/runs"))
    metrics = execute(cfg)  # no exception: the results are safe on disk
    assert metrics["overall"]["pass"]["4"] == 1.0
    info = read_info(cfg)
    assert info["status"] == "finished" and info["error"] is None
    assert info["hub"]["error"].startswith("HfHubHTTPError: Server error '503 Service Unavailable'")
    assert info["hub"]["config_name"] == cfg.run_name
    log = (Path(cfg.out_dir) / "run.log").read_text()
    assert "push to alice/runs failed" in log
    assert f"python -m hotncold.push {cfg.out_dir} alice/runs" in log
    assert len((Path(cfg.out_dir) / "completions.jsonl").read_text().splitlines()) == 10
    assert online.repo("alice/runs").commits == []

    # rerunning the same command with the hub back pushes without searching again
    online.failing.clear()
    engine.calls.clear()
    execute(cfg)
    assert engine.calls == []
    pushed_files(online, "alice/runs", cfg.run_name)
    assert "error" not in read_info(cfg)["hub"]


def read_back(repo_id: str, name: str, cache: Path) -> list[dict]:
    """The rows `datasets.load_dataset(repo_id, name)` gives in a fresh process."""
    code = (
        "import datasets, json, sys; "
        "ds = datasets.load_dataset(sys.argv[1], sys.argv[2], split='train', "
        "cache_dir=sys.argv[3]); "
        "print(json.dumps(ds.to_list()))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, repo_id, name, str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def push_command(*args: str) -> subprocess.CompletedProcess:
    """`python -m hotncold.push ...` as a user runs it (the environment points at the hub)."""
    return subprocess.run(
        [sys.executable, "-m", "hotncold.push", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def test_push_command_pushes_a_finished_run_later(finished, online):
    proc = push_command(finished.out_dir, "alice/later", "--public", "--split", "test")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert online.unknown == []
    assert online.repo("alice/later").visibility == "public"
    pushed_files(online, "alice/later", finished.run_name, split="test")
    assert read_info(finished)["hub"]["repo"] == "alice/later"
    assert f"as config {finished.run_name} ->" in proc.stdout
    # the token went with every request
    assert {
        r.headers.get("authorization") for r in online.requests if r.path.startswith("/api/")
    } == {"Bearer hf_stand_in_token"}


def test_push_command_refuses_unfinished_runs_and_offline_mode(finished, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(finished.out_dir, partial)
    info = json.loads((partial / "run.json").read_text())
    info["status"] = "interrupted"
    (partial / "run.json").write_text(json.dumps(info))
    assert push.main([str(partial), REPO]) == 2
    assert "is not finished (status 'interrupted')" in capsys.readouterr().err
    assert push.main([finished.out_dir]) == 2  # the run names no repository
    assert "names no output.hub_dataset_id" in capsys.readouterr().err
    assert push.main([finished.out_dir, REPO]) == 2  # conftest's HF_HUB_OFFLINE=1
    assert "hotncold.push needs the network but HF_HUB_OFFLINE=1" in capsys.readouterr().err
    assert "hub" not in read_info(finished)


def test_push_command_refuses_a_run_another_process_holds(finished, online, capsys):
    from hotncold.experiment import lock

    with lock.locked(finished.out_dir, "run"):  # a rerun of the same command holds it
        assert push.main([finished.out_dir, "alice/later"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"hotncold: error: {finished.out_dir} is in use by")
    assert not [r for r in online.requests if "commit" in r.path] and "hub" not in read_info(
        finished
    )


def test_push_command_records_a_failed_push(finished, online):
    online.orgs = ["hnc-lab"]
    online.failing["commit"] = 503
    proc = push_command(finished.out_dir, REPO)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"push to {REPO} failed: HfHubHTTPError: Server error '503" in proc.stderr
    assert read_info(finished)["hub"]["error"].startswith("HfHubHTTPError: Server error '503")
    assert online.repo(REPO).commits == []


# --- the real path ---------------------------------------------------------------------------


@pytest.mark.slow
def test_real_dvts_run_flattens_and_loads(real_engine, tmp_path):
    """Real completions of a step-level search (extra fields, per-step temperatures, mixed
    temperatures recorded as null) load from the run files and from the flat table's parquet."""
    model = tiny_model_config(ModelConfig)
    model.max_tokens = 64
    cfg = Config(
        n=4,
        model=model,
        approach=ApproachConfig(name="dvts", beam_width=2, num_iterations=3),
        dataset=DatasetConfig(per_level=1, levels=[1, 2]),
        temperature=TemperatureConfig(
            values=[1.0], schedule="switch", start=0.4, end=1.2, switch_at=1
        ),
    )
    cfg.run_name = run_name(dataclasses.asdict(cfg))
    cfg.out_dir = str(tmp_path / cfg.run_name)
    execute(cfg)
    run = Path(cfg.out_dir)
    raw = datasets.load_dataset(
        "json",
        data_files=str(run / "completions.jsonl"),
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    assert raw.num_rows == 2
    table = flat.flat_table(run)
    assert table.num_rows == 8 and table[0]["approach"] == "dvts-m2"
    assert all(json.loads(e).get("subtree") is not None for e in table["extra"])
    rows = table.to_list()
    assert any(r["temperature"] is None for r in rows)  # steps sampled cold then hot
    assert {t for r in rows for t in r["step_temperatures"]} == {0.4, 1.2}
    path = tmp_path / "flat.parquet"
    table.to_parquet(str(path))
    again = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert again.to_list() == table.to_list()
    frame = pd.read_json(run / "completions.jsonl", lines=True)
    assert frame["completions"].map(len).tolist() == [4, 4]
