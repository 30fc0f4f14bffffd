"""docs/temperature.md stays true: its worked tables, commands, errors and option names are
recomputed here with the real code (no model loads).

The guide marks what is checked:
- a table right after `<!-- check: KIND key=value ... -->` (values in YAML) is rebuilt by
  `render(KIND, params)` and must equal the table as written (cells compared without backticks);
- every `python -m hotncold ...` line in a ```bash block composes with Hydra (sweeps expanded)
  and validates; a trailing `# tag: T...` must be the run name's temperature tag;
- in a ```console block, `$ python -m hotncold ...` followed by `hotncold: error: MSG` must
  fail validation with exactly MSG;
- every `temperature=<option>` named exists in hotncold/conf/temperature/ and every option there
  is named.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml
from conftest import ROOT
from fakes import ScriptedEngine
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

import hotncold.config.hydra  # noqa: F401  (registers the schema and resolvers)
from hotncold.analyze.collect import describe_temperature
from hotncold.config import ApproachConfig, ConfigError, ModelConfig, TemperatureConfig
from hotncold.data import Problem
from hotncold.engine.requests import Generation
from hotncold.experiment.run import to_config
from hotncold.experiment.validate import validate
from hotncold.prm.base import PRM, ItemScores
from hotncold.search.base import SearchContext
from hotncold.search.registry import build_approach
from hotncold.search.temperature import TemperaturePlan, allocate

GUIDE = ROOT / "docs" / "temperature.md"
CONF = ROOT / "hotncold" / "conf"
PLAIN = ["out_dir=/tmp/hotncold-docs-test", "overrides=[]"]
MARKER = re.compile(r"<!-- check: (\w+)(.*?) -->")


def text() -> str:
    return GUIDE.read_text()


def fmt(x: float) -> str:
    return f"{x:g}"


def cells(line: str) -> list[str]:
    return [c.strip().replace("`", "") for c in line.strip().strip("|").split("|")]


def marked_tables() -> list[tuple[str, dict[str, Any], list[list[str]]]]:
    """(kind, params, rows without the header separator) for every marked table."""
    lines = text().splitlines()
    out = []
    for i, line in enumerate(lines):
        found = MARKER.search(line)
        if not found:
            continue
        params = {
            k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in found.group(2).split())
        }
        start = next(j for j in range(i + 1, len(lines)) if lines[j].strip())
        rows = []
        for row in lines[start:]:
            if not row.startswith("|"):
                break
            if not re.fullmatch(r"\|[\s:|-]+\|?", row.strip()):
                rows.append(cells(row))
        assert rows, f"{GUIDE.name}:{i + 1}: no table after the check marker"
        out.append((found.group(1), params, rows))
    return out


def plan(p: dict[str, Any]) -> TemperaturePlan:
    known = {"values", "ratios", "schedule", "start", "end", "horizon", "switch_at"}
    return TemperaturePlan.from_config(
        TemperatureConfig(**{k: v for k, v in p.items() if k in known})
    )


class FlatPRM(PRM):
    """Every step scores 0.5: every ranking is a tie, broken at random (seeded)."""

    def _score_new(self, items):
        return [ItemScores([0.5] * (len(item.steps) - item.start), 0) for item in items]


def one_step(request, i):
    if request.stop:
        return Generation("a step\n", 2, "stop", stop_reason="\n")
    return Generation("the end", 2, "stop")


def search_calls(p: dict[str, Any]) -> tuple[list, list]:
    """Run the real approach on a scripted engine: its engine calls and its completions."""
    engine = ScriptedEngine(one_step)
    approach = p.get("approach", "best_of_n")
    ctx = SearchContext(
        engine=engine,
        prm=FlatPRM(),
        plan=plan(p),
        model=ModelConfig(max_tokens=1000, step_delimiter="\n"),
        approach=ApproachConfig(  # barrier: each depth's requests read from engine.calls
            name=approach,
            beam_width=p.get("beam_width", 4),
            num_iterations=p.get("depths", 3),
            scheduler="barrier",
        ),
        n=p["n"],
        seed=0,
    )
    # u9's rotation offset at seed 0 is 0 (for 2, 3 and 4 values): the guide's tables start at
    # the first value, so depth d starts at value d % k
    problem = Problem(uid="u9", problem="p", answer="1")
    out = build_approach(approach).solve([problem], ["prompt"], ctx)[0]
    return engine.calls, out


def render(kind: str, p: dict[str, Any]) -> list[list[str]]:
    """The table a check marker stands for, header row first."""
    if kind == "slots":  # Best-of-N: the temperature of each of the n completions, in order
        _, out = search_calls(p)
        return [
            ["slot", *(str(i) for i in range(p["n"]))],
            ["temperature", *(fmt(c.temperature) for c in out)],
        ]
    if kind == "prefixes":  # how many of the first N slots each value holds
        order = plan(p).for_slots(p["n"])
        ns = [k for k in (1, 2, 4, 8, 16, 32, 64) if k < p["n"]] + [p["n"]]
        return [["first N", *(fmt(v) for v in p["values"])]] + [
            [str(k), *(str(order[:k].count(v)) for v in p["values"])] for k in ns
        ]
    if kind == "allocate":  # largest-remainder counts at several budgets
        return [["n", *(fmt(v) for v in p["values"])]] + [
            [str(k), *(str(c) for c in allocate(k, p["ratios"]))] for k in p["budgets"]
        ]
    if kind == "search":  # beam_search / dvts: the temperatures of each parent's expansions
        calls, _ = search_calls(p)
        m = p["beam_width"]
        rows = [["depth", "parent", "temperatures of its expansions"]]
        for depth, call in enumerate(calls):
            temps = [fmt(r.temperature) for r in call]
            size = len(temps) if p["approach"] == "beam_search" and depth == 0 else m
            for b in range(0, len(temps), size):
                if p["approach"] == "dvts":
                    parent = f"subtree {b // m}"
                else:
                    parent = "prompt" if depth == 0 else f"beam {b // m}"
                rows.append([str(depth), parent, " ".join(temps[b : b + size])])
        return rows
    if kind == "schedule":  # factor and temperatures per depth
        pl = plan(p)
        k = len(pl.values)
        return [["depth", "factor", "temperatures"]] + [
            [
                str(d),
                fmt(round(pl.factor(d), 6)),
                " ".join(fmt(t) for t in pl.deal([k], d)[0]),
            ]
            for d in range(p["depths"])
        ]
    if kind == "records":  # Best-of-N or search: what completions.jsonl holds per completion
        _, out = search_calls(p)
        return [["completion", "temperature", "step_temperatures"]] + [
            [
                str(i),
                "null" if c.temperature is None else fmt(c.temperature),
                "[" + ", ".join(fmt(t) for t in c.step_temperatures) + "]",
            ]
            for i, c in enumerate(out)
        ]
    if kind == "tags":  # overrides -> run-name tag and the analyzer's kind
        rows = [["overrides", "tag", "analyzer temp_kind"]]
        return rows  # the body is checked row by row in test_tag_table
    raise AssertionError(f"unknown check kind {kind!r}")


def make(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[*PLAIN, *overrides], return_hydra_config=True)


def validated(overrides: list[str]):
    """The composed config after validate(); raises ConfigError like the CLI would."""
    composed = make(overrides)
    validate(to_config(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"])))
    return composed


def tag_of(composed) -> str:
    found = re.search(r"_(T[^_]*(?:_(?:r|lin|cos|sw)[^_]+)*)_n\d+_", composed.run_name)
    assert found, composed.run_name
    return found.group(1)


def expand(overrides: list[str]) -> list[list[str]]:
    """The jobs of a command line: Hydra's own parser expands sweeps (`a=x,y`)."""
    jobs: list[list[str]] = [[]]
    for raw, parsed in zip(overrides, OverridesParser.create().parse_overrides(overrides)):
        if parsed.is_sweep_override():
            key = parsed.get_key_element()
            options = [f"{key}={v}" for v in parsed.sweep_string_iterator()]
        else:
            options = [raw]
        jobs = [[*job, o] for job in jobs for o in options]
    return jobs


def commands(block_lang: str) -> list[tuple[str, list[str]]]:
    """(line, following lines) of each `python -m hotncold` command in ```lang blocks."""
    out = []
    for block in re.findall(rf"```{block_lang}\n(.*?)```", text(), re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            body = line.removeprefix("$ ")
            if re.match(r"python -m hotncold\s", body):
                out.append((body, lines[i + 1 :]))
    return out


def overrides_of(command: str) -> list[str]:
    words = shlex.split(command.split("#", 1)[0])[3:]
    return [w for w in words if not w.startswith("-")]


# ------------------------------------------------------------------------------------ tests


def test_the_guide_marks_tables_of_every_kind():
    kinds = {kind for kind, _, _ in marked_tables()}
    assert kinds >= {"slots", "prefixes", "allocate", "search", "schedule", "records", "tags"}


@pytest.mark.parametrize(
    ("kind", "params", "rows"),
    [t for t in marked_tables() if t[0] != "tags"],
    ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(marked_tables()) if k != "tags"],
)
def test_worked_table_is_what_the_code_computes(kind, params, rows):
    assert rows == render(kind, params)


def test_tag_table():
    for _, _, rows in [t for t in marked_tables() if t[0] == "tags"]:
        assert rows[0] == render("tags", {})[0]
        for overrides, tag, kind in rows[1:]:
            composed = validated(overrides.split())
            assert tag_of(composed) == tag, overrides
            described = describe_temperature(OmegaConf.to_container(composed.temperature))
            assert (described.tag, described.kind) == (tag, kind), overrides


def test_every_command_composes_and_validates():
    found = commands("bash")
    assert len(found) >= 10
    for line, _ in found:
        tag = re.search(r"# tag: (\S+)", line)
        for job in expand(overrides_of(line)):
            composed = validated(job)
            if tag:
                assert tag_of(composed) == tag.group(1), line


def test_every_error_shown_is_the_error_raised():
    found = commands("console")
    assert len(found) >= 4
    for line, after in found:
        shown = after[0].removeprefix("hotncold: error: ")
        assert shown != after[0], f"{line}: the next line must be `hotncold: error: ...`"
        with pytest.raises(ConfigError) as error:
            validated(overrides_of(line))
        assert str(error.value) == shown, line


def test_every_temperature_option_is_covered_and_exists():
    named = set(re.findall(r"temperature=(\w+)", text()))
    options = {p.stem for p in (CONF / "temperature").glob("*.yaml")}
    assert named - options == set(), "the guide names options hotncold/conf/temperature/ lacks"
    assert options - named == set(), "options of hotncold/conf/temperature/ the guide does not show"
