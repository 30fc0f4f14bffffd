"""A process that holds a directory's lock, for tests/test_lock.py (a real process, a real lock).

    python tests/lock_holder.py DIR KIND SECONDS [--fork]

Takes DIR's lock with hotncold.experiment.lock (KIND: ofd or flock), prints `locked <pid>`,
holds it for SECONDS (or until killed), then exits. `--fork` first forks a child that sleeps
a long time without exec (as a library's worker may), to show the child does not keep the lock
after this process dies; the child's pid is printed as `child <pid>`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's hotncold

from hotncold.experiment import lock

if __name__ == "__main__":
    directory, kind, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    lock.KIND = kind
    held = lock.acquire(directory, "run")
    if "--fork" in sys.argv:
        ready, say = os.pipe()
        child = os.fork()
        if child == 0:  # fork's handlers have run once os.fork returns here
            os.write(say, b"x")
            time.sleep(120)
            os._exit(0)
        os.read(ready, 1)
        print(f"child {child}", flush=True)
    print(f"locked {os.getpid()}", flush=True)
    time.sleep(seconds)
    held.release()
