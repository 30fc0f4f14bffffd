"""What the terminal shows of a run: its own lines, a moving progress bar and a results table;
vLLM's loggers and its processes' output go to run.log instead (the real engine: test_e2e)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, run_module
from fakes import ScriptedEngine, half_right

import hotncold.engine.vllm_engine
from hotncold.config import Config, DatasetConfig, TemperatureConfig
from hotncold.data.arithmetic import generate
from hotncold.engine import process_output
from hotncold.engine.requests import EngineStats, GenerationRequest
from hotncold.experiment import terminal
from hotncold.experiment.progress import RunProgress
from hotncold.experiment.run import execute, run
from hotncold.experiment.rundir import RunDir

ANSWERS = {r["problem"]: r["answer"] for r in generate(4)}


def record(name: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 0, "message", None, None)


@pytest.fixture
def quiet():
    terminal.set_verbose(False)
    yield
    terminal.set_verbose(False)


def test_the_terminal_shows_the_run_and_warnings_and_hides_detail_and_vllm(quiet):
    shown = terminal.TerminalFilter().filter
    assert shown(record("hotncold"))  # the run's own voice
    assert not shown(record("hotncold.search.beam_search"))  # a component's step detail
    assert shown(record("hotncold.prm.registry", logging.WARNING))
    assert not shown(record("vllm.v1.engine.core", logging.WARNING))
    assert not shown(record("vllm.processes"))
    assert not shown(record("py.warnings", logging.WARNING))
    terminal.set_verbose(True)
    assert shown(record("vllm.v1.engine.core")) and shown(record("hotncold.search.beam_search"))


SCRIPT = r"""
import subprocess, sys, time
from pathlib import Path
from hotncold.engine import process_output
from hotncold.experiment.rundir import log_to

CHILD = (
    "import os, sys\n"
    "print('child stdout line', flush=True)\n"
    "print('child stderr line', file=sys.stderr, flush=True)\n"
    "os.write(2, b'C++ style warning\\n')\n"
    "sys.stderr.write('tqdm 10%\\rtqdm 100%\\n')\n"
)
log_file = Path(sys.argv[1])
with log_to(log_file):
    with process_output.captured():
        child = subprocess.Popen([sys.executable, "-c", CHILD])
        print("this process, inside the capture")  # buffered: flushed into the pipe
    print("this process, after the capture", flush=True)
    child.wait()
    deadline = time.time() + 20
    while time.time() < deadline and "tqdm 100%" not in log_file.read_text():
        time.sleep(0.05)
"""


def test_processes_started_inside_the_capture_write_to_the_run_log_not_the_terminal(tmp_path):
    log_file = tmp_path / "run.log"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log_file)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "this process, after the capture\n" and proc.stderr == ""
    lines = [line.split(" vllm.processes: ")[-1] for line in log_file.read_text().splitlines()]
    assert {
        "child stdout line",
        "child stderr line",
        "C++ style warning",
        "this process, inside the capture",
        "tqdm 100%",  # a carriage-return redraw keeps its last state
    } <= set(lines)
    assert "tqdm 10%" not in log_file.read_text()


LOOP = r"""
import logging, os, sys, time
from pathlib import Path
from hotncold.engine import process_output
from hotncold.experiment.rundir import log_to

stream = logging.StreamHandler(sys.stdout)  # what vLLM and a terminal put on their loggers
for name in ("vllm", "vllm.processes", ""):
    logging.getLogger(name).addHandler(stream)
    logging.getLogger(name).setLevel(logging.INFO)
log_file = Path(sys.argv[1])
with log_to(log_file):
    with process_output.captured():
        for i in range(2000):  # far more than a pipe holds: a loop would block here
            os.write(1, f"line {i} {'x' * 100}\n".encode())
    deadline = time.time() + 20
    while time.time() < deadline and "line 1999" not in log_file.read_text():
        time.sleep(0.05)
"""


def test_forwarded_lines_never_reach_a_stream_handler_so_they_cannot_loop(tmp_path):
    """A forwarded line written to stdout would go back into the pipe it came from (and the
    thread reading it would block on its own write): lines go to the run logs' files only."""
    log_file = tmp_path / "run.log"
    proc = subprocess.run(
        [sys.executable, "-c", LOOP, str(log_file)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    assert log_file.read_text().count(" vllm.processes: line ") == 2000


def test_vllm_loggers_hand_their_records_to_the_root_logger(quiet):
    vllm = logging.getLogger("vllm")
    own = logging.StreamHandler(sys.stdout)  # what vLLM installs when imported and in LLM()
    saved = (list(vllm.handlers), vllm.propagate)
    vllm.handlers, vllm.propagate = [own], False
    try:
        process_output.route_vllm_loggers()
        assert own not in vllm.handlers and vllm.propagate
        assert all(isinstance(h, logging.NullHandler) for h in vllm.handlers)
    finally:
        vllm.handlers, vllm.propagate = saved


class SlowEngine:
    """Generates `total` tokens over about a second per call, visible while the call runs."""

    def __init__(self, per_call: int) -> None:
        self.stats = EngineStats()
        self.per_call = per_call
        self.live = 0

    def generated_so_far(self) -> int:
        return self.stats.generated_tokens + self.live

    def call(self) -> None:
        for _ in range(20):
            time.sleep(0.1)
            self.live += self.per_call // 20
        self.stats.generated_tokens += self.live
        self.live = 0


def test_the_bar_moves_within_a_batch_and_ends_on_the_tokens_generated(monkeypatch):
    monkeypatch.setattr("hotncold.experiment.progress.TICK_S", 0.05)
    engine = SlowEngine(per_call=400)
    seen = []
    with RunProgress(engine, "test", problems=4, done=0, budget_per_problem=300) as bar:
        watcher = threading.Thread(
            target=lambda: [seen.append(bar.bar.n) or time.sleep(0.05) for _ in range(30)]
        )
        watcher.start()
        engine.call()  # one batch of 2 problems: 400 of their 600 budget tokens
        bar.batch_done(2)
        watcher.join()
        assert len({n for n in seen if 0 < n < 400}) >= 5  # moved during the call
        assert (bar.bar.n, bar.bar.total) == (400, 400 + 2 * 300)  # unused budget handed back
        engine.call()
        bar.batch_done(2)
        assert (bar.bar.n, bar.bar.total) == (800, 800)


@pytest.fixture
def engine(monkeypatch):
    fake = ScriptedEngine(half_right(ANSWERS))
    monkeypatch.setattr(hotncold.engine.vllm_engine, "get_engine", lambda cfg: fake)
    return fake


def config(tmp_path, **kw) -> Config:
    return Config(
        out_dir=str(tmp_path / "run"),
        n=4,
        batch_size=5,
        dataset=DatasetConfig(per_level=4),
        temperature=TemperatureConfig(values=[0.4]),
        **kw,
    )


def test_a_run_ends_with_its_results_table_its_directory_and_the_next_command(
    tmp_path, engine, caplog, quiet
):
    with caplog.at_level(logging.INFO, logger="hotncold"):
        metrics = run(config(tmp_path))
    said = [r.getMessage() for r in caplog.records if r.name == "hotncold"]
    table = said[-1].splitlines()
    run_dir = str(tmp_path / "run")
    assert table[0].startswith("best_of_n T0.4 n=4: 20 problems in ")
    assert table[1].split() == ["accuracy", "(%)", "N=1", "N=2", "N=4"]
    # two of each problem's 4 samples are right: pass@1 is 50%, and 2 of the 4 hold a right one
    # 5/6 of the time; given a right one the PRM picks it (the wrong ones state 1 + 1 = 3)
    assert table[5].split() == ["pass", "50.0", "83.3", "100.0"]
    assert table[3].split()[0] == "weighted" and table[3].split()[-1] == "100.0"
    assert metrics["overall"]["pass"]["2"] == pytest.approx(5 / 6)
    assert table[3].split()[2] == f"{100 * metrics['overall']['weighted']['2']:.1f}"
    assert table[6] == "weighted by level:" and table[7].split()[:2] == ["level", "1"]
    assert table[-2:] == [
        f"run directory: {run_dir}",
        f"next: python -m hotncold.analyze {run_dir}",
    ]
    assert len(table) == 14
    log = (tmp_path / "run" / "run.log").read_text()
    assert "accuracy (%)" in log  # the run log has the table too


def test_a_job_of_a_sweep_ends_with_one_line(tmp_path, engine, caplog, quiet):
    with caplog.at_level(logging.INFO, logger="hotncold"):
        run(config(tmp_path), in_sweep=True)
    last = [r.getMessage() for r in caplog.records if r.name == "hotncold"][-1]
    assert "\n" not in last
    assert last.startswith("best_of_n T0.4 n=4: 20 problems in ")
    assert last.endswith(": weighted 100.0, pass 100.0 at N=4 (%)")


def test_resuming_a_finished_run_still_prints_its_table(tmp_path, engine, caplog, quiet):
    execute(config(tmp_path))
    calls = len(engine.calls)
    with caplog.at_level(logging.INFO, logger="hotncold"):
        run(config(tmp_path))
    assert len(engine.calls) == calls  # nothing searched again
    said = [r.getMessage() for r in caplog.records if r.name == "hotncold"]
    assert any(m.startswith("resuming: 20 of 20 problems") for m in said)
    assert said[-1].splitlines()[0] == "best_of_n T0.4 n=4: 20 problems in " + terminal.duration(
        RunDir(tmp_path / "run").read_info()["sessions"][-1]["wall_s"]
    )


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.4, "4 s"), (65, "1 min 05 s"), (3725, "1 h 02 min")]
)
def test_durations_read_as_a_person_says_them(seconds, text):
    assert terminal.duration(seconds) == text


# The real path: vLLM on the embedded model, as `make run` drives it (shrunk to seconds).
TINY = ["dataset.per_level=1", "n=4", "model.max_tokens=32"]  # the mix needs n >= 3
VLLM_NOISE = re.compile(
    r"(INFO|WARNING|ERROR|DEBUG) \d\d-\d\d \d\d:|pid=\d+\)|warn|^\[W\d|it/s\]|^Loading",
    re.IGNORECASE,
)
"""What vLLM's own output looks like: its log lines (`WARNING 12-01 13:42:48 [file.py:12]`,
prefixed with `(EngineCore pid=12)` from its processes), Python and C++ warnings, tqdm bars."""


def screen(text: str) -> list[str]:
    """The lines a terminal shows: a carriage return redraws a line (tqdm), it adds none."""
    return [line.rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]


def in_a_terminal(*args: str, timeout: float = 900) -> tuple[int, str]:
    """`python -m ARGS` with a pseudo-terminal (24 x 100) as stdin, stdout and stderr, as a
    person runs it, and what it wrote there. tqdm redraws its bar with carriage returns only on
    a terminal (it writes each state on a line of its own into a file or a pipe)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([master], [], [], 1)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=max(1, deadline - time.monotonic()))
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


@pytest.mark.slow
def test_make_run_shows_progress_and_the_verdict_on_one_screen_and_vllm_only_in_run_log(
    tmp_path,
):
    """The two commands of `make run` (the quickstart sweep, then the analyzer): no vLLM line
    reaches the terminal, everything fits one screen, and it ends with hot against cold."""
    sweep = tmp_path / "quickstart"
    code, shown = in_a_terminal(
        "hotncold", "-m", "experiment=quickstart", *TINY, f"hydra.sweep.dir={sweep}"
    )
    assert code == 0, shown[-3000:]
    lines = screen(shown)
    noise = [line for line in lines if VLLM_NOISE.search(line) and "[HYDRA]" not in line]
    assert noise == [], noise
    assert sum("starting vLLM" in line for line in lines) == 1  # one engine for the three runs
    done = [line for line in lines if line.startswith("best_of_n ") and " at N=4 (%)" in line]
    assert [line.split()[1] for line in done] == ["T0.4", "T1.2", "T0.4-0.8-1.2"]
    # the bar counted generated tokens (TINY: 1 problem per level of the preset's 1-3)
    assert re.search(r"tok/s, 3/3 problems\]", shown)
    logs = [p.read_text() for p in sorted(sweep.glob("*/run.log"))]
    [log] = [text for text in logs if "starting vLLM on" in text]  # the run that started it
    assert " vllm" in log and "vllm.processes: " in log  # vLLM's loggers and its processes

    report = run_module("hotncold.analyze", str(sweep), "--out", str(sweep / "analysis"))
    assert report.returncode == 0, report.stderr[-3000:]
    verdict = screen(report.stdout + report.stderr)
    joined = " ".join(line.strip() for line in verdict)  # the answer wraps at 100 columns
    assert "hot − cold" in report.stdout
    assert re.search(r"overall: .*hot \(1\.2\).* cold \(0\.4\).*N=4", joined), joined
    assert verdict[-1] == f"full report: {sweep / 'analysis' / 'report.md'}"
    assert len(lines) + len(verdict) < 40, "\n".join(lines + verdict)


@pytest.mark.slow
def test_the_real_engine_counts_tokens_while_a_call_runs_after_another_engine_started(
    real_engine,
):
    """The bar's source: the engine's own vLLM token counter, read from another thread during
    `generate`, also once a later engine has replaced vLLM's metrics in Prometheus' registry
    (what a judge PRM, or the next engine of a test session, does when it starts)."""
    from vllm.v1.metrics.loggers import PrometheusStatLogger

    # A later engine's statistics logger, without the engine: its __init__ unregisters every
    # vLLM metric and registers its own, as LLM(...) does (reading the registry failed here)
    PrometheusStatLogger(real_engine.llm.llm_engine.vllm_config)
    before = real_engine.generated_so_far()
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(real_engine.generated_so_far())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        out = real_engine.generate(
            [GenerationRequest("Count from 1 to 100: 1, 2,", 1.0, max_tokens=96, n=8)]
        )
    finally:
        stop.set()
        watcher.join()
    total = sum(g.num_tokens for g in out[0])
    assert real_engine.generated_so_far() == before + total
    assert len({n for n in seen if before < n < before + total}) >= 3, seen
