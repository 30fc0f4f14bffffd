"""One writer per directory: an OS file lock on `run.lock`, and a record of who holds it.

A run (and `merge --out`, `push`, a PRM training run) takes the lock before it reads or writes
anything in its directory and keeps it until it is done. The lock is the kernel's, on an open
file: the kernel drops it when the holder exits in any way (kill -9 included), and a network
file system's lock service drops it when the holder's node stops renewing its lease (NFSv4:
90 s by default), so nothing stale is ever left to clean up. `run.lock` itself stays (deleting a
lock file while another process has it open would let two processes lock two different files);
while held it names the holder (host, pid, Slurm job and restart count, start time, command), so
a refusal can say who has the directory and how to stop it. A clean release empties it.

Which lock: open file description locks (`F_OFD_SETLK`, Linux 3.15+), the POSIX byte-range
locks that NFS (v3 through lockd, v4 natively), Lustre mounted with `flock`, GPFS and CephFS
enforce across nodes. Unlike classic POSIX locks they belong to the open file, not the process,
so closing some other descriptor of the file cannot drop them, and two opens in one process
conflict as two processes would; and `F_OFD_GETLK` asks whether the lock is held without taking
it, so readers (`status`) never stand in a writer's way. Where the platform has no OFD locks
(macOS, BSD), `flock` is used; a reader then tests with a shared lock for an instant, and a
writer retries for a moment before concluding that a real holder has the directory.

What is detected, and what remains: after taking the lock, a second open of the file must see
it held (a file system that accepts locks without enforcing them fails this); the mount's
options tell when locks are only local to this node (NFS `nolock` or `local_lock=`, Lustre
`localflock`): the run then goes on, logs a warning, and records the lock's scope in run.json,
but two processes on different nodes are not kept apart. Where locking fails outright (Lustre
without `flock`: "Function not implemented"), the run goes on unlocked, with the same warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shlex
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotncold.config import ConfigError
from hotncold.experiment.rundir import now, slurm_job_id

log = logging.getLogger("hotncold")

LOCK_FILE = "run.lock"

KIND = "ofd" if hasattr(fcntl, "F_OFD_SETLK") else "flock"
"""The lock primitive of this platform (see the module docstring)."""

UNSUPPORTED = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOLCK}
"""Errors meaning the file system takes no locks at all (not that someone holds this one)."""

FLOCK_RETRY_S = 0.5
"""flock only: how long a writer retries, since a reader's test holds a shared lock briefly."""

RECORD_WAIT_S = 1.0
"""How long a refused process waits for a new holder to finish writing its record."""

# struct flock of Linux (glibc, 64-bit off_t): l_type, l_whence, l_start, l_len, l_pid,
# padded to the alignment of off_t as the C compiler pads it.
_FLOCK_FORMAT = "hhqqi"
_FLOCK_PAD = -struct.calcsize(_FLOCK_FORMAT) % struct.calcsize("q")
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a directory's lock, as its record in run.lock says."""

    purpose: str
    """What it does there: run, merge, push, PRM training, ..."""
    host: str | None = None
    pid: int | None = None
    slurm_job_id: str | None = None
    """`<array>_<task>` for an array task, the plain job id otherwise (as run.json names it)."""
    slurm_restart_count: int = 0
    """SLURM_RESTART_COUNT: how many times Slurm requeued that job before this process."""
    started_at: str | None = None
    command: str | None = None

    def describe(self) -> str:
        """`pid 123 on node7 (Slurm job 55_1) (run since 2026-...: python -m hotncold n=4)`"""
        if self.pid is None:
            return "a process that has not written its record in run.lock yet"
        who = f"pid {self.pid} on {self.host}"
        if self.slurm_job_id:
            restart = f", restart {self.slurm_restart_count}" if self.slurm_restart_count else ""
            who += f" (Slurm job {self.slurm_job_id}{restart})"
        what = f"{self.purpose} since {self.started_at}"
        if self.command:  # one line, whatever newlines the arguments held
            command = self.command.replace("\r", "\\r").replace("\n", "\\n")
            what += f": {command[:200]}{'...' if len(command) > 200 else ''}"
        return f"{who} ({what})"

    def stop_hint(self) -> str:
        if self.slurm_job_id:
            return f"scancel {self.slurm_job_id}"
        if self.pid is not None:
            return f"kill {self.pid} on {self.host}"
        return "stop it"


def this_process(purpose: str) -> Holder:
    """This process's record."""
    try:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        restarts = 0
    return Holder(
        purpose=purpose,
        host=socket.gethostname(),
        pid=os.getpid(),
        slurm_job_id=slurm_job_id(),
        slurm_restart_count=restarts,
        started_at=now(),
        command=shlex.join([Path(sys.orig_argv[0]).name, *sys.orig_argv[1:]]),
    )


def is_requeue_of(me: Holder, holder: Holder) -> bool:
    """`me` is a later start of the Slurm job `holder` runs: the same job id, requeued since.

    The job id alone is not enough: two tasks of one job share it too, and they must not wait
    for each other. A requeue is what raises SLURM_RESTART_COUNT."""
    return (
        me.slurm_job_id is not None
        and me.slurm_job_id == holder.slurm_job_id
        and me.slurm_restart_count > holder.slurm_restart_count
    )


class DirectoryBusy(ConfigError):
    """Another process holds the directory's lock; the message is one line naming it."""

    def __init__(self, directory: Path, holder: Holder, waited_s: float = 0.0) -> None:
        self.directory, self.holder = directory, holder
        if waited_s:
            message = (
                f"{directory} is still locked by this Slurm job's earlier start after waiting "
                f"{waited_s:g} s: {holder.describe()}; stop it ({holder.stop_hint()}) and "
                "requeue, or raise cluster.requeue_lock_wait_s"
            )
        else:
            message = (
                f"{directory} is in use by {holder.describe()}; let it finish (python -m "
                f"hotncold.status shows it), or stop it ({holder.stop_hint()}) and run this "
                "again (it resumes)"
            )
        super().__init__(message)


@dataclass
class Lock:
    """A lock this process holds on a directory; `release()` it, or let the process end."""

    directory: Path
    kind: str
    """ofd, flock, or none (the file system takes no locks)."""
    scope: str
    """shared (enforced for every process that sees the file), node (only on this node) or
    none (not enforced)."""
    note: str | None = None
    """Why the scope is narrower than shared."""
    _fd: int | None = None

    def describe(self) -> dict[str, Any]:
        """What run.json records of it."""
        return {
            "kind": self.kind,
            "scope": self.scope,
            **({"note": self.note} if self.note else {}),
        }

    def release(self) -> None:
        """Empty the record, then let go (closing the file releases the lock)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD.pop(fd, None)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


_HELD: dict[int, Lock] = {}
"""Descriptors of the locks this process holds, closed in forked children (below)."""


def _close_in_child() -> None:
    # A forked child shares the parent's open file, and with it the lock: a child outliving a
    # killed parent (an engine worker, say) would keep the directory locked. Closing the
    # child's copy leaves the parent's lock in place (the lock goes with the last close).
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


def acquire(directory: str | Path, purpose: str, requeue_wait_s: float = 0.0) -> Lock:
    """Take the lock of `directory` (created if missing) for `purpose`.

    Held by another process: DirectoryBusy at once, naming it; unless this process is a
    requeued start of the holder's own Slurm job, which waits up to `requeue_wait_s` for the
    earlier start to let go (its node may take a while to kill it)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    me = this_process(purpose)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline: float | None = None
    try:
        while True:
            try:
                got = _try_lock(fd)
            except OSError as error:
                if error.errno not in UNSUPPORTED:
                    raise
                os.close(fd)
                note = f"{path.parent} takes no file locks ({os.strerror(error.errno)})"
                log.warning("%s: two processes on this directory are not kept apart", note)
                return Lock(directory, "none", "none", note)
            if got:
                break
            holder = _read_holder(fd)
            if deadline is None and requeue_wait_s > 0 and is_requeue_of(me, holder):
                deadline = time.monotonic() + requeue_wait_s
                log.warning(
                    "%s is still locked by this job's earlier start (%s); waiting up to %g s "
                    "for it to let go",
                    directory,
                    holder.describe(),
                    requeue_wait_s,
                )
            if deadline is None:
                raise DirectoryBusy(directory, holder)
            if time.monotonic() >= deadline:
                raise DirectoryBusy(directory, holder, waited_s=requeue_wait_s)
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    record = json.dumps(asdict(me)) + "\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, record.encode(), 0)
    os.fsync(fd)
    lock = Lock(directory, KIND, "shared", _fd=fd)
    _HELD[fd] = lock
    if not _enforced(path):
        lock.scope, lock.note = "none", f"locks on {directory} are accepted but not enforced"
        log.warning("%s: two processes on this directory are not kept apart", lock.note)
    elif (reason := node_local_reason(path)) is not None:
        lock.scope, lock.note = "node", reason
        log.warning("%s: two processes on different nodes are not kept apart", reason)
    return lock


@contextlib.contextmanager
def locked(directory: str | Path, purpose: str, requeue_wait_s: float = 0.0) -> Iterator[Lock]:
    """`acquire` for the duration of a block."""
    lock = acquire(directory, purpose, requeue_wait_s)
    try:
        yield lock
    finally:
        lock.release()


def holder(directory: str | Path) -> Holder | None:
    """Who holds `directory`'s lock now; None when nobody does (or it never had one).

    Never takes the lock (with OFD locks), so asking cannot stand in a writer's way."""
    path = Path(directory) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            if not _held_elsewhere(fd):
                return None
        except OSError as error:
            if error.errno in UNSUPPORTED:
                return None
            raise
        return _read_holder(fd)
    finally:
        os.close(fd)


def _flock_struct(lock_type: int) -> bytes:
    return struct.pack(_FLOCK_FORMAT, lock_type, os.SEEK_SET, 0, 0, 0) + b"\0" * _FLOCK_PAD


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock without waiting: False when another open file holds it."""
    if KIND == "ofd":
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK))
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True
    deadline = time.monotonic() + FLOCK_RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _held_elsewhere(fd: int) -> bool:
    """Whether some other open file holds the lock (`fd` may be read-only)."""
    if KIND == "ofd":
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock_struct(fcntl.F_WRLCK))
        return struct.unpack_from(_FLOCK_FORMAT, answer)[0] != fcntl.F_UNLCK
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _read_holder(fd: int) -> Holder:
    """The holder's record; a holder that has just taken the lock gets a moment to write it."""
    deadline = time.monotonic() + RECORD_WAIT_S
    while True:
        try:
            data = json.loads(os.pread(fd, 65536, 0))
            return Holder(**{k: v for k, v in data.items() if k in Holder.__dataclass_fields__})
        except (ValueError, TypeError):
            if time.monotonic() >= deadline:
                return Holder(purpose="process")
            time.sleep(0.05)


def _enforced(path: Path) -> bool:
    """The self-test after taking the lock: a second open of the file must see it held."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _held_elsewhere(fd)
    finally:
        os.close(fd)


def node_local_reason(path: Path, mounts: str | None = None) -> str | None:
    """Why locks under `path` hold only on this node, as its mount's options say (`mounts`:
    the text of /proc/self/mounts, read when not given); None when nothing says so."""
    mount = _mount_of(path, mounts)
    if mount is None:
        return None
    point, fstype, options = mount
    local_only = None
    if fstype.startswith("nfs"):
        local = next((o.split("=", 1)[1] for o in options if o.startswith("local_lock=")), "none")
        if "nolock" in options:
            local_only = "NFS mounted with nolock"
        elif local == "all" or local == ("posix" if KIND == "ofd" else "flock"):
            local_only = f"NFS mounted with local_lock={local}"
    elif fstype == "lustre" and "localflock" in options:
        local_only = "Lustre mounted with localflock"
    return f"{point} is {local_only}: its locks hold on this node only" if local_only else None


def _mount_of(path: Path, mounts: str | None) -> tuple[str, str, list[str]] | None:
    """(mount point, file system type, options) of the mount holding `path`."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return None
    lines = mounts.splitlines()
    target = os.path.realpath(path)
    best: tuple[str, str, list[str]] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        # /proc escapes spaces, tabs, newlines and backslashes in mount points as octal
        point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fields[2], fields[3].split(","))
    return best
