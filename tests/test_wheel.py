"""hotncold installed the ordinary way: built as a wheel, installed into a fresh environment, and
run from outside the checkout, so the config groups must ship inside the package.

No network: the wheel is built without build isolation by the test environment's own
setuptools, and installed without dependencies. The fresh environment sees the test
environment's packages through a .pth file naming its site-packages: Python adds the folders a
.pth names to sys.path but does not read the .pth files inside them, so the editable install of
hotncold there (a .pth-installed import hook) stays off, and `import hotncold` can only find the
wheel's copy (checked).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT
from test_run_names import KNOWN

pytestmark = pytest.mark.slow

GROUPS = ("approach", "cluster", "dataset", "experiment", "model", "prm", "temperature")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The python of a fresh virtual environment with only the wheel of hotncold installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"  # a copy: building writes build/ and *.egg-info next to pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("hotncold", "hydra_plugins"):  # hydra_plugins: the union sweeper
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = subprocess.run(
        [*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("hotncold-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".yaml")}
    conf = {str(p.relative_to(ROOT)) for p in (ROOT / "hotncold" / "conf").rglob("*.yaml")}
    assert shipped == conf
    plugin = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("hydra_plugins/")}
    # a namespace package shared with other plugins: no hydra_plugins/__init__.py of its own
    assert plugin == {
        "hydra_plugins/hotncold_sweeper/__init__.py",
        "hydra_plugins/hotncold_sweeper/union_sweeper.py",
    }

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return python


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def test_hotncold_is_imported_from_the_wheel_not_the_checkout(installed, tmp_path):
    proc = run(
        installed,
        "-c",
        "import sys, hotncold; from hotncold.cluster.sweep import CONF_DIR; "
        "print(hotncold.__file__); print(CONF_DIR); "
        "print(any('editable' in repr(f).lower() for f in sys.meta_path))",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, conf, editable = proc.stdout.split()
    venv = installed.parent.parent
    assert Path(module).is_relative_to(venv) and not Path(module).is_relative_to(ROOT)
    assert Path(conf).is_relative_to(venv) and (Path(conf) / "config.yaml").is_file()
    assert editable == "False"


def test_the_installed_command_composes_its_config(installed, tmp_path):
    proc = run(installed, "-m", "hotncold", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "name: smollm2_135m" in proc.stdout and "name: equation_checker" in proc.stdout
    assert not (tmp_path / "outputs").exists()  # --cfg shows the config and runs nothing


def test_the_installed_help_lists_every_config_group(installed, tmp_path):
    proc = run(installed, "-m", "hotncold", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "== Configuration groups ==" in proc.stdout
    listed = {line.split(":")[0] for line in proc.stdout.splitlines() if ": " in line}
    assert set(GROUPS) <= listed
    assert "temperature: anneal, anneal_cosine, cold" in proc.stdout


def test_the_other_installed_commands_find_their_configs(installed, tmp_path):
    for module in ("hotncold.train_prm", "hotncold.prm_server"):
        proc = run(installed, "-m", module, "--cfg", "job", cwd=tmp_path)
        assert proc.returncode == 0, f"{module}: {proc.stderr[-3000:]}"
    proc = run(installed, "-m", "hotncold.status", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "--resubmit" in proc.stdout


def test_the_installed_package_names_runs_as_the_checkout_does(installed, tmp_path):
    overrides, name = KNOWN["beam_search_multi"]
    script = (
        "import sys; from hydra import compose, initialize_config_dir\n"
        "import hotncold.config.hydra\n"
        "from hotncold.cluster.sweep import CONF_DIR\n"
        "with initialize_config_dir(config_dir=str(CONF_DIR), version_base='1.3'):\n"
        "    print(compose('config', overrides=sys.argv[1:]).run_name)\n"
    )
    proc = run(installed, "-c", script, "out_dir=x", "overrides=[]", *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == name


def test_the_installed_union_sweeper_launches_the_cpu_preset_jobs_status_lists(installed, tmp_path):
    """Hydra builds the union sweeper from the wheel's hydra_plugins package, outside the
    checkout; the task records what each job was given and runs nothing."""
    script = (
        "import sys\n"
        "from hydra.core.hydra_config import HydraConfig\n"
        "from hotncold.cluster.sweep import expected_jobs, hydra_app\n"
        "launched = []\n"
        "def task(cfg):\n"
        "    launched.append(tuple(HydraConfig.get().overrides.task))\n"
        "with hydra_app('hotncold') as hydra:\n"
        "    hydra.multirun(config_name='config', task_function=task, overrides=sys.argv[1:])\n"
        "print(len(launched), expected_jobs(sys.argv[-1].split('=', 1)[1]) == launched)\n"
    )
    args = ["experiment=hot_vs_cold_cpu", "seed=0", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = run(installed, "-c", script, *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["13", "True"]  # 4 x 3 fixed-temperature + 1 adaptive
