"""The union sweeper (`hydra/sweeper=union`): a sweep that is a union of grids, e.g. the CPU
preset's fixed-temperature approaches crossed with single temperatures plus adaptive Best-of-N,
which only runs on a ladder of temperatures.

The job lists come from the real composition of the preset (Hydra's compose API, the stored
`hydra.sweeper`) and from real sweeps through the union sweeper and Hydra's basic launcher:
with a task that records what it was launched with (quick), and with hotncold's own runs on
the embedded model, then `python -m hotncold.status` (slow).
"""

from __future__ import annotations

import itertools
import json

import pytest
from conftest import run_module, sweep_in_process
from hydra.core.hydra_config import HydraConfig

from hotncold.cluster import hydra_private
from hotncold.cluster.sweep import expected_jobs, hydra_app
from hotncold.cluster.sweep_grids import sweep_jobs, sweeper_jobs
from hotncold.config import ConfigError

PRESET = "experiment=hot_vs_cold_cpu"
FIXED = ("best_of_n", "beam_search", "dvts", "particle_filter")


def preset_jobs(*arguments: str) -> list[list[str]]:
    """The jobs `python -m hotncold -m experiment=hot_vs_cold_cpu ARGUMENTS` launches, listed
    from the composed `hydra.sweeper` and command line as `expected_jobs` lists them."""
    with hydra_app("hotncold") as hydra:
        config = hydra_private.compose_multirun(hydra, "config", [PRESET, *arguments])
        task = list(config.hydra.overrides.task)
        return sweeper_jobs(hydra.config_loader, config.hydra.sweeper, task)


def grid(approaches, temperatures, seeds) -> list[list[str]]:
    return [
        [f"approach={a}", f"temperature={t}", f"seed={s}", PRESET]
        for a, t, s in itertools.product(approaches, temperatures, seeds)
    ]


def test_the_cpu_preset_is_its_fixed_temperature_grid_then_adaptive_best_of_n_on_the_mix():
    jobs = preset_jobs()
    main = grid(FIXED, ("cold", "hot", "multi"), (0, 1))
    assert jobs == main + grid(["adaptive_bon"], ["multi"], (0, 1))
    assert len(jobs) == 4 * 3 * 2 + 1 * 1 * 2 == 26


def test_command_line_seeds_apply_to_every_grid():
    jobs = preset_jobs("seed=0,1,2")
    assert jobs == grid(FIXED, ("cold", "hot", "multi"), (0, 1, 2)) + grid(
        ["adaptive_bon"], ["multi"], (0, 1, 2)
    )
    assert len(jobs) == 39


def test_a_command_line_approach_drops_the_grid_it_excludes():
    jobs = preset_jobs("approach=dvts")
    assert jobs == grid(["dvts"], ("cold", "hot", "multi"), (0, 1))
    assert len(jobs) == 6 and not any("approach=adaptive_bon" in job for job in jobs)


def test_a_command_line_temperature_keeps_the_grid_whose_values_it_gives():
    jobs = preset_jobs("temperature=multi")
    assert jobs == grid(FIXED, ["multi"], (0, 1)) + grid(["adaptive_bon"], ["multi"], (0, 1))
    assert len(jobs) == 10
    assert preset_jobs("temperature=cold,hot") == grid(FIXED, ("cold", "hot"), (0, 1))


def test_duplicates_are_removed_the_first_kept():
    # the adaptive grid's jobs are the main grid's here
    jobs = preset_jobs("approach=adaptive_bon,dvts", "temperature=multi")
    assert jobs == grid(["adaptive_bon", "dvts"], ["multi"], (0, 1))
    # an extra grid inside the main one adds nothing
    also = "hydra.sweeper.also=[{approach: dvts},{approach: adaptive_bon, temperature: multi}]"
    assert preset_jobs(also) == preset_jobs()


def test_an_extra_grid_adds_keys_after_the_main_grids_and_a_basic_sweep_keeps_its_own_list():
    with hydra_app("hotncold") as hydra:
        loader = hydra.config_loader
        params = {"temperature": "cold,hot", "seed": 0}
        also = [{"n": "4,16", "temperature": "hot"}]
        assert sweep_jobs(loader, ["n=4"], params, also) == [
            ["temperature=cold", "seed=0", "n=4"],
            ["temperature=hot", "seed=0", "n=4"],
        ]  # the extra grid's n=16 is not among the command line's values; n=4 is a duplicate
        assert sweep_jobs(loader, [], params, also) == [
            ["temperature=cold", "seed=0"],
            ["temperature=hot", "seed=0"],
            ["temperature=hot", "seed=0", "n=4"],
            ["temperature=hot", "seed=0", "n=16"],
        ]
        # the basic sweeper (also None) launches its cross product as it is, duplicates too
        assert sweep_jobs(loader, ["seed=0,0"], params) == [
            ["temperature=cold", "seed=0"],
            ["temperature=cold", "seed=0"],
            ["temperature=hot", "seed=0"],
            ["temperature=hot", "seed=0"],
        ]


@pytest.mark.parametrize(
    ("also", "message"),
    [
        ("hydra.sweeper.also=[approach]", "each grid of hydra.sweeper.also must map"),
        ("hydra.sweeper.also=[{}]", "hydra.sweeper.also holds an empty grid"),
        ("hydra.sweeper.also=approach", "hydra.sweeper.also must be a list of grids"),
    ],
)
def test_a_malformed_extra_grid_is_refused_in_one_line_naming_the_form(also, message):
    with pytest.raises(ConfigError, match=message) as error:
        preset_jobs(also)
    assert "also: [{approach: adaptive_bon, temperature: multi}]" in str(error.value)
    assert "\n" not in str(error.value)


def launched_by_a_sweep(*overrides: str) -> list[tuple[str, ...]]:
    """The jobs a real `-m` sweep launches (Hydra's sweeper and basic launcher, in this
    process), each as the override list its job was given; the task records, runs nothing."""
    launched = []

    def record(cfg):
        launched.append(tuple(HydraConfig.get().overrides.task))

    with hydra_app("hotncold") as hydra:
        hydra.multirun(config_name="config", task_function=record, overrides=list(overrides))
    return launched


@pytest.mark.parametrize(
    ("arguments", "count", "adaptive"),
    [
        ([PRESET, "seed=0"], 4 * 3 + 1, 1),
        ([PRESET, "temperature=multi", "seed=1", "hydra.sweeper.max_batch_size=3"], 4 + 1, 1),
        # the union sweeper chosen on the command line, its grids given there
        (
            [
                "hydra/sweeper=union",
                "hydra.sweeper.params={temperature: 'cold,hot'}",
                "seed=0,1",
                "hydra.sweeper.also=[{temperature: multi, approach: adaptive_bon}]",
            ],
            2 * 2 + 2,
            2,
        ),
    ],
    ids=["preset", "batches", "command_line"],
)
def test_the_jobs_a_union_sweep_launched_are_the_jobs_its_folder_lists(
    tmp_path, arguments, count, adaptive
):
    launched = launched_by_a_sweep(*arguments, f"hydra.sweep.dir={tmp_path}")
    assert len(launched) == len(set(launched)) == count
    assert expected_jobs(tmp_path) == launched
    assert sum("approach=adaptive_bon" in job for job in launched) == adaptive
    if arguments[0] == PRESET:
        assert [list(job) for job in launched] == preset_jobs(*arguments[1:])


def test_a_basic_sweep_is_still_listed_as_it_launched(tmp_path):
    launched = launched_by_a_sweep(
        "temperature=cold,hot", "seed=0,1", f"hydra.sweep.dir={tmp_path}"
    )
    assert len(launched) == 4 and expected_jobs(tmp_path) == launched


@pytest.mark.slow
def test_a_real_union_sweep_on_the_embedded_model_finishes_every_job_status_lists(
    real_engine, tmp_path
):
    """The preset's two grids narrowed to three tiny jobs (Best-of-N and the particle filter
    cold, adaptive Best-of-N on the mix), run by hotncold on vLLM; `python -m hotncold.status`
    lists exactly those jobs, each finished."""
    sweep = tmp_path / "sweep"
    tiny = ["dataset.per_level=1", "dataset.levels=[1]", "n=4", "model.max_tokens=16"]
    sweep_in_process(
        PRESET,
        "hydra.sweeper.params.approach='best_of_n,particle_filter'",
        "hydra.sweeper.params.temperature=cold",
        "seed=0",
        *tiny,
        f"hydra.sweep.dir={sweep}",
    )
    proc = run_module("hotncold.status", str(sweep), "--json", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    jobs = [
        (f"approach={a}", f"temperature={t}", "seed=0", PRESET, *tiny)
        for a, t in (("best_of_n", "cold"), ("particle_filter", "cold"), ("adaptive_bon", "multi"))
    ]
    assert [tuple(job["overrides"]) for job in report["jobs"]] == jobs
    assert [(job["state"], job["done"], job["total"]) for job in report["jobs"]] == [
        ("done", 1, 1)
    ] * 3
    assert report["counts"] == {"done": 3} and not report["other_runs"]


def test_a_sweep_of_another_sweeper_is_refused_in_one_line_naming_it(tmp_path):
    launched_by_a_sweep("seed=0,1", f"hydra.sweep.dir={tmp_path}")
    stored = (tmp_path / "multirun.yaml").read_text()
    (tmp_path / "multirun.yaml").write_text(
        stored.replace(hydra_private.BASIC_SWEEPER, "hydra_plugins.optuna.OptunaSweeper")
    )
    with pytest.raises(ConfigError, match=r"was run by hydra_plugins\.optuna\.OptunaSweeper") as e:
        expected_jobs(tmp_path)
    assert "\n" not in str(e.value) and "hydra/sweeper=union" in str(e.value)
