from __future__ import annotations

import dataclasses
import json

import pytest

from hotncold.config import Config, ConfigError
from hotncold.experiment.naming import run_name
from hotncold.experiment.rundir import RunDir, append_jsonl, read_jsonl, write_json


def test_write_json_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    write_json(path, {"a": 1})

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken)
    with pytest.raises(OSError):
        write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left


def test_partial_last_line_is_dropped_and_repaired(tmp_path):
    path = tmp_path / "c.jsonl"
    append_jsonl(path, [{"uid": "a"}, {"uid": "b"}])
    with open(path, "a") as f:
        f.write('{"uid": "c", "compl')  # the process died mid-append
    assert [r["uid"] for r in read_jsonl(path)] == ["a", "b"]
    read_jsonl(path, repair=True)
    append_jsonl(path, [{"uid": "c"}])
    assert [r["uid"] for r in read_jsonl(path)] == ["a", "b", "c"]


def test_a_last_line_still_without_its_newline_is_left_out_and_cut_on_resume(tmp_path):
    path = tmp_path / "c.jsonl"
    append_jsonl(path, [{"uid": "a"}])
    with open(path, "a") as f:
        f.write('{"uid": "b"}')  # the whole record, but the append stopped before its newline
    assert [r["uid"] for r in read_jsonl(path)] == ["a"]  # a reader counts whole lines only
    read_jsonl(path, repair=True)
    append_jsonl(path, [{"uid": "b"}, {"uid": "c"}])  # the resumed run writes it again
    assert [r["uid"] for r in read_jsonl(path)] == ["a", "b", "c"]


def test_damage_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"uid": "a"}\nnot json\n{"uid": "b"}\n')
    with pytest.raises(ValueError, match="damaged at line 2"):
        read_jsonl(path)


def test_a_run_dir_refuses_a_different_config(tmp_path):
    cfg = Config(out_dir=str(tmp_path))
    RunDir(tmp_path).prepare(cfg)
    RunDir(tmp_path).prepare(dataclasses.replace(cfg, batch_size=3))  # not result-relevant
    other = dataclasses.replace(cfg, n=16)
    with pytest.raises(ConfigError, match=r"different config \(n\)"):
        RunDir(tmp_path).prepare(other)


def test_run_names_differ_on_every_axis():
    base = dataclasses.asdict(Config())
    names = {run_name(base)}
    for change in ({"n": 16}, {"seed": 1}):
        names.add(run_name({**base, **change}))
    for group, field, value in [
        ("temperature", "values", [1.2]),
        ("model", "name", "other"),
        ("prm", "agg_strategy", "last"),
        ("dataset", "per_level", 3),
        ("approach", "name", "dvts"),
    ]:
        names.add(run_name({**base, group: {**base[group], field: value}}))
    assert len(names) == 8
    sharded = {**base, "dataset": {**base["dataset"], "num_shards": 3, "shard": 1}}
    assert "_arithmetic-shard1of3_" in run_name(sharded)
