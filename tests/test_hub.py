"""Results as plain data and on the hub: loading run files, the flat table, `output.push_to_hub`.

Nothing here reaches the network: the hub's whoami endpoint is played by a local HTTP server,
and `Dataset.push_to_hub` / `HfApi.upload_folder` (which need the real hub) are replaced by
recorders; the rest of the path (pre-flight, table, files uploaded, run.json) is the real one.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import shutil
import threading
from pathlib import Path

import datasets
import huggingface_hub
import pandas as pd
import pytest
import yaml
from conftest import ROOT, tiny_model_config
from fakes import ScriptedEngine
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


class StandIn:
    """The hub's whoami endpoint on localhost: answers `status` and `body`, counts requests."""

    def __init__(self) -> None:
        self.status = 200
        self.body: dict = {"name": "alice", "orgs": [], "auth": {"accessToken": {"role": "write"}}}
        self.requests: list[tuple[str, str | None]] = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append((self.path, self.headers.get("authorization")))
                data = json.dumps(stand_in.body).encode()
                self.send_response(stand_in.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def online(monkeypatch):
    """A token and a reachable hub (the stand-in), with the offline variables unset."""
    for var in hub.OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_stand_in_token")
    stand_in = StandIn()
    monkeypatch.setattr(constants, "ENDPOINT", stand_in.url)
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


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
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(ConfigError, match=r"run `hf auth login` or set HF_TOKEN"):
        hub.preflight(PUSH)
    assert online.requests == []


def test_preflight_accepts_a_write_token_of_the_owner_or_its_organization(online):
    hub.preflight(OutputConfig(push_to_hub=True, hub_dataset_id="alice/runs"))
    online.body["orgs"] = [{"name": "hnc-lab"}]
    assert hub.check_hub(REPO, "test")["name"] == "alice"
    whoami = [r for r in online.requests if r[0] == "/api/whoami-v2"]
    assert whoami == [("/api/whoami-v2", "Bearer hf_stand_in_token")] * 2


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
    online.status, online.body = status, body
    with pytest.raises(ConfigError, match=message):
        hub.preflight(PUSH)


def test_preflight_lets_a_rate_limited_whoami_pass(online, caplog):
    online.status, online.body = 429, {"error": "rate limited"}
    hub.preflight(PUSH)  # many sweep jobs starting at once must not fail for it
    assert "rate-limited (HTTP 429)" in caplog.text


def test_preflight_names_the_endpoint_that_does_not_answer(online, monkeypatch):
    online.server.shutdown()
    online.server.server_close()  # nothing listens on that port any more
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


class Recorder:
    """Stands in for the two hub calls: records their arguments and the uploaded files."""

    def __init__(self, monkeypatch, fail: Exception | None = None) -> None:
        self.pushes: list[dict] = []
        self.uploads: list[dict] = []
        recorder = self

        def push_to_hub(table, repo_id, **kw):
            if fail is not None:
                raise fail
            recorder.pushes.append({"table": table, "repo_id": repo_id, **kw})

        def upload_folder(api, **kw):
            folder = Path(kw["folder_path"])
            files = {p.name: p.read_text() for p in folder.iterdir()}
            recorder.uploads.append({**kw, "files": files})

        monkeypatch.setattr(datasets.Dataset, "push_to_hub", push_to_hub)
        monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)


def test_finished_run_is_pushed_as_the_config_named_after_it(tmp_path, engine, online, monkeypatch):
    recorder = Recorder(monkeypatch)
    cfg = config(tmp_path, output=OutputConfig(push_to_hub=True, hub_dataset_id="alice/runs"))
    execute(cfg)
    [pushed] = recorder.pushes
    assert pushed["repo_id"] == "alice/runs" and pushed["config_name"] == cfg.run_name
    assert pushed["private"] is True and pushed["split"] == "train"
    assert pushed["table"].num_rows == 40 and pushed["table"][0]["run_name"] == cfg.run_name
    [upload] = recorder.uploads
    assert upload["repo_id"] == "alice/runs" and upload["repo_type"] == "dataset"
    assert upload["path_in_repo"] == f"runs/{cfg.run_name}"
    assert set(upload["files"]) == {"run.json", "metrics.json", "config.yaml"}
    assert json.loads(upload["files"]["run.json"])["status"] == "finished"
    assert yaml.safe_load(upload["files"]["config.yaml"])["run_name"] == cfg.run_name
    info = read_info(cfg)
    assert info["status"] == "finished"
    assert info["hub"]["repo"] == "alice/runs" and info["hub"]["config_name"] == cfg.run_name
    assert info["hub"]["url"] == f"{online.url}/datasets/alice/runs/viewer/{cfg.run_name}"
    assert info["hub"]["rows"] == 40 and "error" not in info["hub"]


def test_failed_push_leaves_the_run_finished_and_records_why(tmp_path, engine, online, monkeypatch):
    Recorder(monkeypatch, fail=RuntimeError("503 Server Error: Service Unavailable\nmore"))
    cfg = config(tmp_path, output=OutputConfig(push_to_hub=True, hub_dataset_id="alice/runs"))
    metrics = execute(cfg)  # no exception: the results are safe on disk
    assert metrics["overall"]["pass"]["4"] == 1.0
    info = read_info(cfg)
    assert info["status"] == "finished" and info["error"] is None
    assert info["hub"]["error"] == "RuntimeError: 503 Server Error: Service Unavailable"
    assert info["hub"]["config_name"] == cfg.run_name
    log = (Path(cfg.out_dir) / "run.log").read_text()
    assert "push to alice/runs failed" in log
    assert f"python -m hotncold.push {cfg.out_dir} alice/runs" in log
    assert len((Path(cfg.out_dir) / "completions.jsonl").read_text().splitlines()) == 10

    # rerunning the same command with the hub back pushes without searching again
    recorder = Recorder(monkeypatch)
    engine.calls.clear()
    execute(cfg)
    assert engine.calls == [] and recorder.pushes[0]["config_name"] == cfg.run_name
    assert "error" not in read_info(cfg)["hub"]


def test_push_command_pushes_a_finished_run_later(finished, online, monkeypatch, capsys):
    recorder = Recorder(monkeypatch)
    assert push.main([finished.out_dir, "alice/later", "--public", "--split", "test"]) == 0
    [pushed] = recorder.pushes
    assert (pushed["repo_id"], pushed["config_name"]) == ("alice/later", finished.run_name)
    assert pushed["private"] is False and pushed["split"] == "test"
    assert read_info(finished)["hub"]["repo"] == "alice/later"
    assert f"as config {finished.run_name} ->" in capsys.readouterr().out


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


def test_push_command_refuses_a_run_another_process_holds(finished, online, monkeypatch, capsys):
    from hotncold.experiment import lock

    recorder = Recorder(monkeypatch)
    with lock.locked(finished.out_dir, "run"):  # a rerun of the same command holds it
        assert push.main([finished.out_dir, "alice/later"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"hotncold: error: {finished.out_dir} is in use by")
    assert recorder.pushes == [] and "hub" not in read_info(finished)


def test_push_command_records_a_failed_push(finished, online, monkeypatch, capsys):
    Recorder(monkeypatch, fail=OSError("connection reset"))
    online.body["orgs"] = [{"name": "hnc-lab"}]
    assert push.main([finished.out_dir, REPO]) == 1
    assert "push to hnc-lab/runs failed: OSError: connection reset" in capsys.readouterr().err
    assert read_info(finished)["hub"]["error"] == "OSError: connection reset"


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
