"""What hotncold relies on in Hydra's private API (`hotncold.cluster.hydra_private`), pinned.

`python -m hotncold.status` lists a sweep's jobs by expanding its stored overrides as Hydra's
basic sweeper did, and `--resubmit` relaunches jobs through the launcher a composed config
names. A Hydra upgrade that changes any of this fails here, not in a user's sweep.
"""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra

from hotncold.cluster import hydra_private
from hotncold.cluster.sweep import CONF_DIR, hydra_app, task
from hotncold.cluster.sweep_status import LAUNCHERS


@pytest.fixture
def app():
    with hydra_app("hotncold") as hydra:
        yield hydra


def test_a_sweep_expands_into_the_cross_product_in_launch_order(app):
    jobs = hydra_private.expand(app, ["temperature=cold,hot", "seed=0,1", "n=4"])
    assert jobs == [
        ["temperature=cold", "seed=0", "n=4"],
        ["temperature=cold", "seed=1", "n=4"],
        ["temperature=hot", "seed=0", "n=4"],
        ["temperature=hot", "seed=1", "n=4"],
    ]


def test_a_key_given_twice_keeps_its_first_place_and_its_last_value(app):
    """How a command line overrides a preset's `hydra.sweeper.params` (params come first)."""
    jobs = hydra_private.expand(app, ["approach=best_of_n,dvts", "seed=0,1", "approach=dvts"])
    assert jobs == [["approach=dvts", "seed=0"], ["approach=dvts", "seed=1"]]


def test_sweep_functions_and_quoting_expand_as_on_the_command_line(app):
    jobs = hydra_private.expand(app, ["dataset.shard=range(3)", "dataset.levels=[1, 2]"])
    assert [job[0] for job in jobs] == ["dataset.shard=0", "dataset.shard=1", "dataset.shard=2"]
    assert {job[1] for job in jobs} == {"dataset.levels=[1,2]"}


def test_the_default_sweeper_is_the_basic_one_multirun_yaml_names(app):
    config = hydra_private.compose_multirun(app, "config", [])
    assert config.hydra.sweeper._target_ == hydra_private.BASIC_SWEEPER


def test_a_composed_config_keeps_its_overrides_and_sweep_folder(app, tmp_path):
    config = hydra_private.compose_multirun(
        app, "config", [f"hydra.sweep.dir={tmp_path}", "seed=3", "temperature=hot"]
    )
    assert config.hydra.sweep.dir == str(tmp_path)
    assert list(config.hydra.overrides.task) == ["seed=3", "temperature=hot"]
    assert config.seed == 3 and list(config.temperature["values"]) == [1.2]
    # the config groups come from the package (hotncold/conf), wherever it is installed
    sources = [s.path for s in config.hydra.runtime.config_sources if s.provider == "main"]
    assert sources == [str(CONF_DIR)]


@pytest.mark.parametrize(
    ("cluster", "launcher"),
    [
        ("local", "hydra._internal.core_plugins.basic_launcher.BasicLauncher"),
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_the_launcher_a_composed_config_names_is_built_with_its_settings(
    app, tmp_path, cluster, launcher
):
    config = hydra_private.compose_multirun(
        app, "config", [f"cluster={cluster}", f"hydra.sweep.dir={tmp_path}"]
    )
    assert config.hydra.launcher._target_ == launcher
    built = hydra_private.launcher(app, config, task)
    assert f"{type(built).__module__}.{type(built).__name__}" == launcher
    assert callable(built.launch)
    if cluster != "local":
        # status tells Slurm sweeps from local ones by this target (multirun.yaml keeps it)
        assert LAUNCHERS[launcher] == cluster


def test_the_instance_is_cleared_when_its_block_ends_even_on_an_error():
    """Callers compose afterwards in the same process (status, then analyze; the tests):
    an instance left behind makes their `initialize_config_dir` fail."""
    with hydra_app("hotncold"):
        assert GlobalHydra.instance().is_initialized()
    assert not GlobalHydra.instance().is_initialized()
    with pytest.raises(RuntimeError), hydra_app("hotncold"):
        raise RuntimeError("a job failed")
    assert not GlobalHydra.instance().is_initialized()
