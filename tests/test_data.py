from __future__ import annotations

import functools
import json
import operator

import pandas as pd
import pytest

from hotncold.config import ConfigError, DatasetConfig
from hotncold.data import load_problems, shard
from hotncold.data.arithmetic import generate
from hotncold.evaluation.grading import Grader
from hotncold.prm.equation_checker import find_claims


def test_arithmetic_is_deterministic_and_math_like():
    rows = generate(5, seed=3)
    assert rows == generate(5, seed=3)
    assert rows != generate(5, seed=4)
    assert {r["level"] for r in rows} == {1, 2, 3, 4, 5}
    for r in rows:
        assert set(r) >= {"problem", "answer", "level", "subject", "unique_id"}
        assert int(r["answer"]) >= 0
    assert len({r["unique_id"] for r in rows}) == len(rows)


def test_arithmetic_answers_are_right_and_difficulty_rises():
    rows = generate(40)
    for r in rows:
        # the recorded expression evaluates to the answer, and the checker agrees
        claims = find_claims(f"{r['solution']} = {r['answer']}")
        assert claims and all(c.holds for c in claims), r
    by_level = {lvl: [r for r in rows if r["level"] == lvl] for lvl in range(1, 6)}
    ops = {
        lvl: sum(r["solution"].count(o) for r in rs for o in "+-*/") / len(rs)
        for lvl, rs in by_level.items()
    }
    assert ops[1] < ops[3] < ops[5]
    biggest = {
        lvl: max(int(n) for r in rs for n in r["problem"].split() if n.isdigit())
        for lvl, rs in by_level.items()
    }
    assert biggest[1] <= 10 < biggest[5]


def test_level_filter_slice_and_shards():
    base = DatasetConfig(per_level=4)
    assert len(load_problems(base)) == 20
    assert {p.level for p in load_problems(DatasetConfig(per_level=4, levels=[2, 5]))} == {2, 5}
    assert len(load_problems(DatasetConfig(per_level=4, start=3, limit=5))) == 5
    shards = [load_problems(DatasetConfig(per_level=4, num_shards=3, shard=i)) for i in range(3)]
    assert [len(s) for s in shards] == [7, 7, 6]
    assert [p.uid for s in shards for p in s] == [p.uid for p in load_problems(base)]


def test_shard_sizes_differ_by_at_most_one():
    for total in range(0, 30):
        for k in range(1, 7):
            parts = [shard(list(range(total)), k, i) for i in range(k)]
            assert functools.reduce(operator.iadd, parts, []) == list(range(total))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_local_jsonl_with_field_mapping_and_answer_pattern(tmp_path):
    path = tmp_path / "gsm.jsonl"
    rows = [
        {"question": f"What is {i} + 1?", "solution": f"{i} + 1 = {i + 1}\n#### {i + 1}"}
        for i in range(3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DatasetConfig(
        name="gsm",
        source="file",
        path=str(path),
        problem_field="question",
        answer_field="solution",
        answer_pattern=r"####\s*(.+?)\s*$",
        level_field=None,
        subject_field=None,
        id_field=None,
    )
    problems = load_problems(cfg)
    assert [p.answer for p in problems] == ["1", "2", "3"]
    assert [p.uid for p in problems] == ["gsm/0", "gsm/1", "gsm/2"]
    assert problems[0].level is None


def test_local_parquet_with_math_levels(tmp_path):
    path = tmp_path / "m.parquet"
    pd.DataFrame(
        {
            "problem": ["1+1?", "2+2?"],
            "answer": ["2", "4"],
            "level": ["Level 3", "Level 5"],
            "type": ["Algebra", "Geometry"],
            "idx": ["a", "b"],
        }
    ).to_parquet(path)
    cfg = DatasetConfig(source="file", path=str(path), subject_field="type", id_field="idx")
    problems = load_problems(cfg)
    assert [(p.level, p.subject, p.uid) for p in problems] == [
        (3, "Algebra", "a"),
        (5, "Geometry", "b"),
    ]


def test_missing_column_and_duplicate_ids_are_config_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"problem": "a", "answer": "1", "unique_id": "x"}\n'
        '{"problem": "b", "answer": "2", "unique_id": "x"}\n'
    )
    with pytest.raises(ConfigError, match="no column 'level'"):
        load_problems(DatasetConfig(source="file", path=str(path)))
    with pytest.raises(ConfigError, match="repeats the id"):
        load_problems(
            DatasetConfig(source="file", path=str(path), level_field=None, subject_field=None)
        )


def test_math500_from_shared_data_when_present():
    from conftest import ROOT

    path = ROOT.parent / "shared" / "data" / "math500.jsonl"
    if not path.exists():
        pytest.skip("../shared/data/math500.jsonl is not on this machine")
    problems = load_problems(DatasetConfig(name="math500", source="file", path=str(path)))
    assert len(problems) == 500
    assert {p.level for p in problems} == {1, 2, 3, 4, 5}
    # every gold answer is at least equivalent to itself under the grader
    grader = Grader()
    assert all(grader.is_correct(p.answer, p.answer) for p in problems[:50])


ROW = '{"problem": "1+1?", "answer": "2", "unique_id": "a", "level": 1, "subject": "s"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'{ROW}\n{{"problem": "2+2?", "ans', r"line 2 is cut off \(an interrupted"),
        (f"{ROW}\nnot json\n{ROW}\n", r"line 2 is not valid JSON: Expecting value \(column 1\)"),
        (f"{ROW}\n\n[1, 2]\n", "line 3 is a JSON list, not an object"),
    ],
)
def test_a_torn_or_malformed_jsonl_line_is_named_with_its_number(tmp_path, text, message):
    path = tmp_path / "d.jsonl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_problems(DatasetConfig(source="file", path=str(path)))
    assert str(info.value).startswith(f"dataset.path='{path}' line")
    assert "\n" not in str(info.value) and "one JSON object per line" in str(info.value)


def test_json_csv_and_parquet_files_read_as_rows_and_name_their_damage(tmp_path):
    rows = [json.loads(ROW), {**json.loads(ROW), "unique_id": "b", "level": None}]
    listed = tmp_path / "d.json"
    listed.write_text(json.dumps(rows, indent=1))
    columns = tmp_path / "c.json"
    columns.write_text(json.dumps({k: [r[k] for r in rows] for k in rows[0]}))
    table = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    for path in (listed, columns, table):
        problems = load_problems(DatasetConfig(source="file", path=str(path)))
        assert [(p.uid, p.level, p.answer) for p in problems] == [("a", 1, "2"), ("b", None, "2")]
    listed.write_text(json.dumps(rows, indent=1)[:-20])
    with pytest.raises(ConfigError, match=r"is not valid JSON at line \d+ column \d+"):
        load_problems(DatasetConfig(source="file", path=str(listed)))
    table.write_text("problem,answer\n1+1?,2\n2+2?,4,extra\n")
    with pytest.raises(ConfigError, match=r"cannot be read as csv: .*line 3"):
        load_problems(DatasetConfig(source="file", path=str(table)))
    broken = tmp_path / "d.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match="cannot be read as parquet") as info:
        load_problems(DatasetConfig(source="file", path=str(broken)))
    assert "\n" not in str(info.value)
    (tmp_path / "latin1.jsonl").write_bytes(ROW.encode() + b'\n{"problem": "caf\xe9"}\n')
    with pytest.raises(ConfigError, match="line 2 is not UTF-8"):
        load_problems(DatasetConfig(source="file", path=str(tmp_path / "latin1.jsonl")))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("./not/here", "no such folder"),
        ("~/not-here-either", "no such folder"),
        ("owner/name/extra", "is not a valid hub dataset id"),
        ("bad id", "is not a valid hub dataset id"),
    ],
)
def test_a_hub_dataset_id_is_checked_before_the_hub_is_asked(path, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_problems(DatasetConfig(source="hub", path=path))
    assert "\n" not in str(info.value)


# --- the AIME and AMC recipes, and hub datasets read from the cache ---------------------------

# AI-MO/aimo-validation-aime's columns: id (int64), problem, solution, answer (text), url
AIME_ROWS = [
    {
        "id": 60,
        "problem": "Find the remainder when 2^10 is divided by 1000.",
        "solution": "2^10 = 1024, so the remainder is 24.",
        "answer": "24",
        "url": "https://artofproblemsolving.com/wiki/index.php/2022_AIME_I_Problems/Problem_1",
    },
    {
        "id": 61,
        "problem": "What is 7 * 11 * 13?",
        "solution": "1001.",
        "answer": "1001",
        "url": "https://artofproblemsolving.com/wiki/index.php/2022_AIME_I_Problems/Problem_2",
    },
]
AMC_ROWS = [  # AI-MO/aimo-validation-amc's: id, problem, answer (a float column), url
    {"id": 0, "problem": "What is 71 * 2?", "answer": 142.0, "url": "https://aops.com/a"},
    {"id": 1, "problem": "What is 1/4 + 1/4?", "answer": 0.5, "url": "https://aops.com/b"},
]


def recipe(name: str, **changes) -> DatasetConfig:
    from conftest import ROOT
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import hotncold.config.hydra  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "hotncold" / "conf"), version_base="1.3"):
        composed = compose("config", overrides=[f"dataset={name}"])
    values = {**OmegaConf.to_container(composed.dataset), **changes}
    return DatasetConfig(**values)


def test_aime_and_amc_recipes_read_files_shaped_like_their_datasets(tmp_path):
    pd.DataFrame(AIME_ROWS).to_parquet(tmp_path / "aime.parquet")
    pd.DataFrame(AMC_ROWS).to_parquet(tmp_path / "amc.parquet")  # answer stays float64
    assert pd.read_parquet(tmp_path / "amc.parquet")["answer"].dtype == "float64"
    aime = load_problems(recipe("aime", source="file", path=str(tmp_path / "aime.parquet")))
    amc = load_problems(recipe("amc", source="file", path=str(tmp_path / "amc.parquet")))
    assert [(p.uid, p.answer, p.level, p.subject) for p in aime] == [
        ("60", "24", None, None),
        ("61", "1001", None, None),
    ]
    assert aime[0].row["solution"] == AIME_ROWS[0]["solution"]
    assert [(p.uid, p.answer) for p in amc] == [("0", "142"), ("1", "0.5")]
    assert amc[0].row["url"] == "https://aops.com/a"
    grader = Grader()
    assert grader.is_correct("142", amc[0].answer) and grader.is_correct("\\frac{1}{2}", "0.5")


def test_an_answer_of_142_point_0_grades_equal_to_142():
    grader = Grader()
    assert grader.is_correct("142", "142.0") and grader.is_correct("142.0", "142")
    assert not grader.is_correct("143", "142.0") and not grader.is_correct("142.5", "142.0")


def test_hub_datasets_load_offline_from_the_cache_or_say_what_to_prefetch(hub_cache, tmp_path):
    from fake_hub import cached_repo

    with pytest.raises(ConfigError) as missing:
        load_problems(recipe("amc"))
    assert "python -m hotncold.prefetch dataset=amc" in str(missing.value)
    assert "HF_HUB_OFFLINE=1" in str(missing.value) and "\n" not in str(missing.value)
    pd.DataFrame(AMC_ROWS).to_parquet(tmp_path / "train.parquet")
    cached_repo(
        hub_cache,
        "AI-MO/aimo-validation-amc",
        {"data/train-00000-of-00001.parquet": (tmp_path / "train.parquet").read_bytes()},
        repo_type="dataset",
    )
    problems = load_problems(recipe("amc"))
    assert [(p.uid, p.problem, p.answer) for p in problems] == [
        ("0", "What is 71 * 2?", "142"),
        ("1", "What is 1/4 + 1/4?", "0.5"),
    ]
