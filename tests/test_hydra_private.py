"""What hotncold relies on in Hydra's private API (`hotncold.cluster.hydra_private`), pinned.

`python -m hotncold.status` lists a sweep's jobs by expanding its stored overrides as Hydra's
basic sweeper did, `--resubmit` relaunches jobs through the launcher a composed config names,
and the union sweeper is a basic sweeper launching a job list of its own. A Hydra upgrade that
changes any of this fails here, not in a user's sweep.
"""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext

from hotncold.cluster import hydra_private, sweep_grids
from hotncold.cluster.sweep import CONF_DIR, hydra_app, task
from hotncold.cluster.sweep_status import LAUNCHERS


@pytest.fixture
def app():
    with hydra_app("hotncold") as hydra:
        yield hydra


def test_a_sweep_expands_into_the_cross_product_in_launch_order(app):
    jobs = hydra_private.expand(app.config_loader, ["temperature=cold,hot", "seed=0,1", "n=4"])
    assert jobs == [
        ["temperature=cold", "seed=0", "n=4"],
        ["temperature=cold", "seed=1", "n=4"],
        ["temperature=hot", "seed=0", "n=4"],
        ["temperature=hot", "seed=1", "n=4"],
    ]


def test_a_key_given_twice_keeps_its_first_place_and_its_last_value(app):
    """How a command line overrides a preset's `hydra.sweeper.params` (params come first)."""
    arguments = ["approach=best_of_n,dvts", "seed=0,1", "approach=dvts"]
    jobs = hydra_private.expand(app.config_loader, arguments)
    assert jobs == [["approach=dvts", "seed=0"], ["approach=dvts", "seed=1"]]


def test_sweep_functions_and_quoting_expand_as_on_the_command_line(app):
    arguments = ["dataset.shard=range(3)", "dataset.levels=[1, 2]"]
    jobs = hydra_private.expand(app.config_loader, arguments)
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


class Listed(hydra_private.ListedJobsSweeper):
    """A sweeper launching a fixed job list, whatever the command line says."""

    JOBS = (["seed=7", "n=2"], ["seed=3"], ["temperature=hot", "seed=7"])

    def jobs(self, arguments):
        self.arguments = arguments
        return [list(job) for job in self.JOBS]


@pytest.mark.parametrize("batch", [None, 2])
def test_a_listed_jobs_sweeper_launches_its_list_through_the_basic_sweeper(tmp_path, batch):
    """BasicSweeper.sweep takes its jobs from self.split_arguments (which ListedJobsSweeper
    replaces), saves multirun.yaml, and launches the batches in order with running indices."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.hydra_config import HydraConfig

    launched = []

    def record(cfg):
        launched.append((HydraConfig.get().job.num, list(HydraConfig.get().overrides.task)))

    with hydra_app("hotncold") as hydra:
        config = hydra_private.compose_multirun(
            hydra, "config", [f"hydra.sweep.dir={tmp_path}", "seed=0,1", "n=4"]
        )
        context = HydraContext(config_loader=hydra.config_loader, callbacks=Callbacks(config))
        sweeper = Listed(max_batch_size=batch, params={"temperature": "cold,hot"})
        sweeper.setup(hydra_context=context, task_function=record, config=config)
        batches = []
        launch = sweeper.launcher.launch

        def in_batches(jobs, initial_job_idx):
            batches.append(len(jobs))
            return launch(jobs, initial_job_idx=initial_job_idx)

        sweeper.launcher.launch = in_batches
        sweeper.sweep(["seed=0,1", "n=4"])
    assert sweeper.arguments == ["seed=0,1", "n=4"]
    assert launched == list(enumerate(Listed.JOBS))
    assert batches == ([3] if batch is None else [2, 1])
    assert (tmp_path / "multirun.yaml").is_file()


def test_the_union_sweeper_is_the_plugin_its_config_option_names(app):
    config = hydra_private.compose_multirun(app, "config", ["hydra/sweeper=union"])
    assert config.hydra.sweeper._target_ == sweep_grids.UNION_SWEEPER
    from hydra.core.plugins import Plugins

    plugin = Plugins.instance().class_name_to_class[sweep_grids.UNION_SWEEPER]
    assert issubclass(plugin, hydra_private.ListedJobsSweeper)
