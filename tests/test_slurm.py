"""What hotncold reads from Slurm: sacct and squeue outputs as a real cluster prints them.

Every output here was captured from Slurm 22.05.8 (Debian 12) with slurmdbd on MariaDB 10.11,
on the one-node cluster tests/slurm_local.sh starts, by `sacct -o JobID,State,NodeList
--parsable2 -j <id>` (what submitit and hotncold ask) and `squeue -h -r --states=all -o '%i|%T'
-j <id>`. For some captures the cluster was configured as production clusters often are:
`PrologFlags=Contain` (the `.extern` steps), a higher-priority partition with
`PreemptType=preempt/partition_prio` (PREEMPTED), cgroup memory limits (OUT_OF_MEMORY). The
jobs were `sbatch --wrap 'sleep N'` arrays and single jobs, then scancel, `scontrol requeue`,
`scontrol requeuehold`, a time limit, `scontrol update NodeName=... State=DOWN` (NODE_FAIL).
The commands run against the live cluster are in tests/test_cluster.py.
"""

from __future__ import annotations

import logging
import subprocess

import pytest

from hotncold.cluster import slurm
from hotncold.cluster.slurm import LIVE_STATES, job_states, parse_sacct, parse_squeue

HEADER = "JobID|State|NodeList\n"

# A 4-task array with at most one task at a time (`--array=0-3%1`): the pending tasks are one
# record, and asking for one of them by its own id finds nothing.
ARRAY_PENDING = HEADER + (
    "4_0|RUNNING|vm\n4_0.batch|RUNNING|vm\n4_0.extern|RUNNING|vm\n4_[1-3%1]|PENDING|None assigned\n"
)
ARRAY_PENDING_ASKED_BY_TASK = HEADER  # sacct ... -j 4_2, at the same moment
# ...after `scancel 4_0` (cancelled as root: "by 0"), 4_1 started...
ARRAY_TASK_CANCELLED = HEADER + (
    "4_0|CANCELLED by 0|vm\n"
    "4_0.batch|CANCELLED|vm\n"
    "4_0.extern|COMPLETED|vm\n"
    "4_1|RUNNING|vm\n"
    "4_1.batch|RUNNING|vm\n"
    "4_1.extern|RUNNING|vm\n"
    "4_[2-3%1]|PENDING|None assigned\n"
)
# ...and `scancel 4`: the tasks that never started stay one record.
ARRAY_CANCELLED = HEADER + (
    "4_0|CANCELLED by 0|vm\n"
    "4_0.batch|CANCELLED|vm\n"
    "4_0.extern|COMPLETED|vm\n"
    "4_1|CANCELLED by 0|vm\n"
    "4_1.batch|CANCELLED|vm\n"
    "4_1.extern|COMPLETED|vm\n"
    "4_[2-3%1]|CANCELLED by 0|None assigned\n"
)

# `sbatch --array=0-3%2`, one second after submission: accounting has no record yet, while the
# controller runs two tasks; five seconds later accounting has caught up.
LAG_SACCT = HEADER
LAG_SQUEUE = "6_2|PENDING\n6_3|PENDING\n6_1|RUNNING\n6_0|RUNNING\n"
CAUGHT_UP_SACCT = HEADER + (
    "6_0|RUNNING|vm\n6_0.batch|RUNNING|vm\n6_1|RUNNING|vm\n6_1.batch|RUNNING|vm\n"
    "6_[2-3%2]|PENDING|None assigned\n"
)
# Three seconds after `--array=0-1` started both tasks, sacct listed one of them; other jobs
# showed PENDING for seconds while their steps ran.
LAG_ONE_TASK_MISSING = HEADER + "7_1|RUNNING|vm\n7_1.batch|RUNNING|vm\n7_1.extern|RUNNING|vm\n"
LAG_PENDING_WHILE_RUNNING = HEADER + (
    "21|PENDING|vm\n21.batch|RUNNING|vm\n21.extern|RUNNING|vm\n21.0|RUNNING|vm\n"
)

# `scontrol requeue 7_1` (what submitit's handler runs) on a running task: the job shows
# REQUEUED until it starts again; with -D its earlier run is listed too, oldest first.
REQUEUED = HEADER + "7_1|REQUEUED|vm\n7_1.batch|CANCELLED|vm\n7_1.extern|COMPLETED|vm\n"
REQUEUED_RUNNING_AGAIN_D = HEADER + (
    "7_0|RUNNING|vm\n"
    "7_0.batch|RUNNING|vm\n"
    "7_0.extern|RUNNING|vm\n"
    "7_1|REQUEUED|vm\n"
    "7_1.batch|CANCELLED|vm\n"
    "7_1.extern|COMPLETED|vm\n"
    "7_1|RUNNING|vm\n"
    "7_1.batch|RUNNING|vm\n"
    "7_1.extern|RUNNING|vm\n"
)
# `scontrol requeuehold 21` (squeue: PENDING, "job requeued in held state").
REQUEUE_HELD = HEADER + "21|PENDING|None assigned\n"

FAILED = HEADER + "10|FAILED|vm\n10.batch|FAILED|vm\n10.extern|COMPLETED|vm\n"  # exit 3
TIMEOUT = HEADER + "9|TIMEOUT|vm\n9.batch|CANCELLED|vm\n9.extern|COMPLETED|vm\n"  # -t 1
OUT_OF_MEMORY = HEADER + (  # --mem=100M, 600 MB touched, cgroup memory limits
    "20|OUT_OF_MEMORY|vm\n20.batch|OUT_OF_MEMORY|vm\n20.extern|COMPLETED|vm\n"
)
# Without cgroups (jobacct_gather's OverMemoryKill) the same job ends FAILED instead.
OVER_MEMORY_KILLED = HEADER + "11|FAILED|vm\n11.batch|CANCELLED by 0|vm\n11.extern|COMPLETED|vm\n"
# The node set DOWN under two running jobs: --no-requeue ends NODE_FAIL; the requeueable one
# is PENDING again, its failed run visible with -D.
NODE_FAIL = HEADER + "12|NODE_FAIL|vm\n12.batch|CANCELLED|vm\n12.extern|CANCELLED|vm\n"
NODE_FAIL_REQUEUED_D = HEADER + (
    "13|NODE_FAIL|vm\n13.batch|CANCELLED|vm\n13.extern|CANCELLED|vm\n13|PENDING|None assigned\n"
)
# Preempted by a job of a higher-priority partition: PreemptMode=CANCEL ends PREEMPTED;
# PreemptMode=REQUEUE puts the tasks back in the queue.
PREEMPTED = HEADER + (
    "17_0|PREEMPTED|vm\n17_0.batch|CANCELLED|vm\n17_0.extern|COMPLETED|vm\n"
    "17_1|PREEMPTED|vm\n17_1.batch|CANCELLED|vm\n17_1.extern|COMPLETED|vm\n"
)
PREEMPTED_REQUEUED = HEADER + "14_0|PENDING|None assigned\n14_1|PENDING|None assigned\n"

# slurmdbd stopped: sacct's stderr, exit status 1.
ACCOUNTING_DOWN = (
    "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent connection "
    "to host:127.0.0.1:6819: Connection refused\n"
    "sacct: error: Sending PersistInit msg: Connection refused\n"
    "sacct: error: Problem talking to the database: Connection refused\n"
)


@pytest.mark.parametrize(
    ("output", "states"),
    [
        (ARRAY_PENDING, {"4_0": "RUNNING", "4_1": "PENDING", "4_2": "PENDING", "4_3": "PENDING"}),
        (ARRAY_PENDING_ASKED_BY_TASK, {}),
        (
            ARRAY_TASK_CANCELLED,
            {"4_0": "CANCELLED", "4_1": "RUNNING", "4_2": "PENDING", "4_3": "PENDING"},
        ),
        (ARRAY_CANCELLED, {f"4_{i}": "CANCELLED" for i in range(4)}),
        (CAUGHT_UP_SACCT, {"6_0": "RUNNING", "6_1": "RUNNING", "6_2": "PENDING", "6_3": "PENDING"}),
        (LAG_SACCT, {}),
        (LAG_PENDING_WHILE_RUNNING, {"21": "PENDING"}),
        (REQUEUED, {"7_1": "REQUEUED"}),
        (REQUEUED_RUNNING_AGAIN_D, {"7_0": "RUNNING", "7_1": "RUNNING"}),  # last record wins
        (REQUEUE_HELD, {"21": "PENDING"}),
        (FAILED, {"10": "FAILED"}),
        (TIMEOUT, {"9": "TIMEOUT"}),
        (OUT_OF_MEMORY, {"20": "OUT_OF_MEMORY"}),
        (OVER_MEMORY_KILLED, {"11": "FAILED"}),
        (NODE_FAIL, {"12": "NODE_FAIL"}),
        (NODE_FAIL_REQUEUED_D, {"13": "PENDING"}),
        (PREEMPTED, {"17_0": "PREEMPTED", "17_1": "PREEMPTED"}),
        (PREEMPTED_REQUEUED, {"14_0": "PENDING", "14_1": "PENDING"}),
    ],
)
def test_parse_sacct_reads_what_slurm_22_05_prints(output, states):
    assert parse_sacct(output) == states


def test_final_and_live_states():
    for state in ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "SPECIAL_EXIT", "SUSPENDED"):
        assert state in LIVE_STATES
    for state in ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"):
        assert state not in LIVE_STATES
    assert "PREEMPTED" not in LIVE_STATES  # a job preempted and requeued shows PENDING again


def test_parse_squeue_reads_one_line_per_task():
    assert parse_squeue(LAG_SQUEUE) == {
        "6_0": "RUNNING",
        "6_1": "RUNNING",
        "6_2": "PENDING",
        "6_3": "PENDING",
    }
    assert parse_squeue("") == {}


class Cluster:
    """Answers sacct and squeue with outputs captured from the real cluster, and records what
    it was asked (exact query-shape tests; tests/test_cluster.py asks the live cluster)."""

    def __init__(self, sacct=(HEADER, "", 0), squeue=("", "", 0)):
        self.answers = {"sacct": sacct, "squeue": squeue}
        self.commands: list[list[str]] = []

    def run(self, command, **kwargs):
        self.commands.append(command)
        stdout, stderr, code = self.answers[command[0]]
        return subprocess.CompletedProcess(command, code, stdout, stderr)

    def jobs_asked(self, program: str) -> list[str]:
        return [c[c.index("-j") + 1] for c in self.commands if c[0] == program]


@pytest.fixture
def cluster(monkeypatch):
    def use(**answers):
        fake = Cluster(**answers)
        monkeypatch.setattr(slurm.subprocess, "run", fake.run)
        monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
        return fake

    return use


def test_job_states_asks_for_whole_arrays_and_finds_tasks_still_pending(cluster):
    fake = cluster(sacct=(ARRAY_PENDING, "", 0))
    assert job_states(["4_2", "4_0"]) == {"4_0": "RUNNING", "4_2": "PENDING"}
    assert fake.jobs_asked("sacct") == ["4"]  # `-j 4_2` would have found nothing


def test_job_states_prefers_the_controller_while_accounting_lags(cluster):
    cluster(sacct=(LAG_SACCT, "", 0), squeue=(LAG_SQUEUE, "", 0))
    assert job_states(["6_0", "6_3"]) == {"6_0": "RUNNING", "6_3": "PENDING"}


def test_job_states_uses_accounting_alone_for_jobs_the_controller_forgot(cluster):
    forgotten = ("", "slurm_load_jobs error: Invalid job id specified\n", 1)
    cluster(sacct=(TIMEOUT, "", 0), squeue=forgotten)
    assert job_states(["9"]) == {"9": "TIMEOUT"}
    down = ("", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)", 1)
    cluster(sacct=(ARRAY_CANCELLED, "", 0), squeue=down)
    assert job_states(["4_3"]) == {"4_3": "CANCELLED"}


def test_job_states_is_none_when_accounting_cannot_be_asked(cluster, caplog):
    cluster(sacct=("", ACCOUNTING_DOWN, 1), squeue=(LAG_SQUEUE, "", 0))
    with caplog.at_level(logging.WARNING, logger="hotncold.cluster.slurm"):
        assert job_states(["6_0"]) is None
    assert "sacct failed: sacct: error: Problem talking to the database" in caplog.text
    assert job_states([]) == {}
