"""One writer per directory: real locks held by real processes (tests/lock_holder.py)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from hotncold.config import ConfigError
from hotncold.experiment import lock

KINDS = ["ofd", "flock"]


@pytest.fixture(params=KINDS)
def kind(request, monkeypatch):
    """Each test runs with both primitives (flock is what platforms without OFD locks use)."""
    monkeypatch.setattr(lock, "KIND", request.param)
    return request.param


class Holder:
    """tests/lock_holder.py in a process of its own."""

    def __init__(
        self,
        directory: Path,
        kind: str,
        seconds: float = 60,
        *,
        fork: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        args = [sys.executable, str(ROOT / "tests" / "lock_holder.py"), str(directory), kind]
        self.proc = subprocess.Popen(
            [*args, str(seconds), *(["--fork"] if fork else [])],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        self.child = None
        line = self.proc.stdout.readline().split()
        if line and line[0] == "child":
            self.child = int(line[1])
            line = self.proc.stdout.readline().split()
        assert line == ["locked", str(self.proc.pid)], line

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def test_a_second_process_is_refused_in_one_line_that_names_the_holder(tmp_path, kind):
    holder = Holder(tmp_path, kind)
    try:
        with pytest.raises(lock.DirectoryBusy) as info:
            lock.acquire(tmp_path, "run")
        message = str(info.value)
        assert "\n" not in message and isinstance(info.value, ConfigError)
        assert f"pid {holder.proc.pid} on {socket.gethostname()}" in message
        assert "lock_holder.py" in message  # its command
        assert f"kill {holder.proc.pid}" in message and "hotncold.status" in message
        record = lock.holder(tmp_path)
        assert (record.pid, record.purpose) == (holder.proc.pid, "run")
    finally:
        holder.kill()
    # the kernel let go with the process: no stale lock, though its record is still there
    assert lock.holder(tmp_path) is None
    assert json.loads((tmp_path / lock.LOCK_FILE).read_text())["pid"] == holder.proc.pid
    taken = lock.acquire(tmp_path, "run")
    assert lock.holder(tmp_path).pid == os.getpid()
    taken.release()


def test_release_frees_the_directory_and_empties_the_record(tmp_path, kind):
    with lock.locked(tmp_path / "new" / "run", "merge") as held:
        assert held.describe() == {"kind": kind, "scope": "shared"}
        assert lock.holder(tmp_path / "new" / "run").purpose == "merge"
        # one process cannot hold it twice either (two opens conflict like two processes)
        with pytest.raises(lock.DirectoryBusy, match=f"pid {os.getpid()}"):
            lock.acquire(tmp_path / "new" / "run", "run")
    assert lock.holder(tmp_path / "new" / "run") is None
    assert (tmp_path / "new" / "run" / lock.LOCK_FILE).read_text() == ""
    assert lock.holder(tmp_path / "never-locked") is None


def test_asking_who_holds_it_never_takes_the_lock(tmp_path):
    """With OFD locks a reader (status) asks without locking, so a writer starting at that very
    moment is never refused because of it."""
    stop = time.monotonic() + 2
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from hotncold.experiment import lock\n"
            f"while time.monotonic() < {stop}: lock.holder(sys.argv[1])",
            str(tmp_path),
        ],
        cwd=ROOT,
    )
    try:
        takes = 0
        while reader.poll() is None:
            lock.acquire(tmp_path, "run").release()  # never DirectoryBusy
            takes += 1
        assert reader.returncode == 0 and takes > 50
    finally:
        reader.kill()


def test_a_forked_child_does_not_keep_the_lock_after_its_parent_dies(tmp_path, kind):
    holder = Holder(tmp_path, kind, fork=True)
    try:
        holder.kill()
        os.kill(holder.child, 0)  # the child still lives, with its copy of the open file
        assert lock.holder(tmp_path) is None
        lock.acquire(tmp_path, "run").release()
    finally:
        os.kill(holder.child, signal.SIGKILL)


def test_a_requeued_slurm_job_waits_for_its_earlier_start(tmp_path, kind, monkeypatch):
    # The earlier start of job 77 holds the lock for 3 s more (its node is slow to kill it).
    Holder(tmp_path, kind, seconds=3, env={"SLURM_JOB_ID": "77", "SLURM_RESTART_COUNT": "0"})
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # what Slurm sets on the requeued start
    started = time.monotonic()
    held = lock.acquire(tmp_path, "run", requeue_wait_s=60)
    assert time.monotonic() - started > 1.5  # it waited for the earlier start to let go
    assert lock.holder(tmp_path).slurm_restart_count == 1
    held.release()


def test_a_requeued_job_gives_up_after_the_wait_and_others_never_wait(tmp_path, kind, monkeypatch):
    holder = Holder(tmp_path, kind, env={"SLURM_JOB_ID": "77"})
    try:
        monkeypatch.setenv("SLURM_JOB_ID", "77")
        monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
        with pytest.raises(lock.DirectoryBusy, match="after waiting 1 s") as info:
            lock.acquire(tmp_path, "run", requeue_wait_s=1)
        assert "scancel 77" in str(info.value) and "cluster.requeue_lock_wait_s" in str(info.value)
        # another task of the same job (same restart count) and another job are refused at once
        for job, restarts in (("77", "0"), ("78", "5")):
            monkeypatch.setenv("SLURM_JOB_ID", job)
            monkeypatch.setenv("SLURM_RESTART_COUNT", restarts)
            started = time.monotonic()
            with pytest.raises(lock.DirectoryBusy, match="is in use by"):
                lock.acquire(tmp_path, "run", requeue_wait_s=60)
            assert time.monotonic() - started < 30
    finally:
        holder.kill()


def test_a_file_system_without_locks_is_run_unlocked_with_a_warning(tmp_path, monkeypatch, caplog):
    # No such file system here: the kernel's answer on one (Lustre without `flock`) is stood in.
    def no_locks(*args, **kwargs):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(lock.fcntl, "fcntl", no_locks)
    monkeypatch.setattr(lock.fcntl, "flock", no_locks)
    held = lock.acquire(tmp_path, "run")
    assert held.describe()["scope"] == "none" and "takes no file locks" in held.note
    assert "not kept apart" in caplog.text
    assert lock.holder(tmp_path) is None
    held.release()


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export /scratch nfs4 rw,vers=4.2,local_lock=none,addr=10.0.0.1 0 0
server:/home /home nfs rw,vers=3,nolock 0 0
server:/proj /proj nfs4 rw,local_lock=all 0 0
mgs@tcp:/lustre /lustre lustre rw,localflock 0 0
mgs@tcp:/lfs2 /lfs2 lustre rw,flock 0 0
server:/x /mnt/with\\040space nfs4 rw,local_lock=posix 0 0
"""


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/scratch/runs/a", None),
        ("/home/me/runs/a", "/home is NFS mounted with nolock: its locks hold on this node only"),
        ("/proj/a", "/proj is NFS mounted with local_lock=all: its locks hold on this node only"),
        (
            "/lustre/a",
            "/lustre is Lustre mounted with localflock: its locks hold on this node only",
        ),
        ("/lfs2/a", None),
        ("/mnt/with space/a", "local_lock=posix"),
        ("/tmp/a", None),
    ],
)
def test_mount_options_that_keep_locks_on_one_node_are_named(path, reason, monkeypatch):
    monkeypatch.setattr(lock, "KIND", "ofd")
    found = lock.node_local_reason(Path(path), MOUNTS)
    assert found == reason or (reason is not None and found is not None and reason in found)
