"""Fault injection with real processes: a worker killed mid-node, SIGTERM to the queue
cluster, the Redis broker restarted with runs queued. Each fault ends every run once, in one
terminal state, with no dbt left behind and the project's write lock free."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_q.conf import Conf

from dbtlib.invocation import DbtInvocation
from dbtlib.launcher import DbtProcess, group_alive, signal_group
from runs.models import Run, RunState
from runs.progress import NodeProgress
from runs.reaper import reap_lost_runs
from runs.services import run_dir, trigger_run
from runs.worker import RunExecution, execute_run
from tests.conftest import drain_queue
from tests.runs.conftest import wait_final, wait_for, wait_until
from tests.runs.test_worker import advisory_lock_free, backends_of, log_text

REPO = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (CI has it)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private, memory-only redis-server: restarting it loses what it held, as a broker
    restarted without persistence does."""

    def __init__(self, work: Path) -> None:
        self.port = _free_port()
        self.work = work
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*argv, "--dir", str(self.work)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._answers, "redis-server to answer", timeout=30)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


class QueueCluster:
    """A `manage.py qcluster` of this test's own, on its own broker."""

    def __init__(self, work: Path, redis_url: str) -> None:
        self.log_file = work / "qcluster.log"
        env = {
            **os.environ,
            "DATABASE_NAME": connection.settings_dict["NAME"],
            "REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            "RUN_CANCEL_GRACE_SECONDS": "2",
        }
        with open(self.log_file, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO / "manage.py"), "qcluster"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: "running" in self.log_file.read_text() or self.process.poll() is not None, "qcluster", 60)
        assert self.process.poll() is None, self.log_file.read_text()[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def broker(tmp_path, monkeypatch) -> Iterator[RedisServer]:
    """A private Redis broker; what this test process enqueues goes to it, on the queue a
    private cluster reads."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (CI has it)")
    server = RedisServer(tmp_path)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", server.url)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", Conf.PREFIX)
    yield server
    server.stop()


@pytest.fixture
def cluster(broker, tmp_path, seeded_warehouse, transactional_db) -> Iterator[QueueCluster]:
    started = QueueCluster(tmp_path, broker.url)
    yield started
    started.stop()


def test_kill_9_of_a_worker_mid_node_leaves_one_terminal_state_no_dbt_and_a_free_lock(runs_cluster, operator):
    run = trigger_run(
        project="sleepy", command="run", select="slow", vars={"sleep_seconds": 120}, actor=operator, source="api"
    )
    run = wait_for(run, lambda r: r.node_results.filter(unique_id="model.sleepy.slow", status="running").exists())
    os.kill(run.worker_pid, signal.SIGKILL)
    # The launcher sees its worker's pipe close and stops dbt; no reaper needed for that.
    wait_until(lambda: not group_alive(run.process_group), "the launcher to stop the dead worker's dbt", timeout=60)
    wait_until(lambda: advisory_lock_free(run), "the dead worker's write lock to be let go", timeout=30)
    with override_settings(RUN_STALE_AFTER_SECONDS=5):
        wait_until(lambda: reap_lost_runs() or Run.objects.get(pk=run.pk).is_final, "the reaper", timeout=60)
    run.refresh_from_db()
    assert run.state == RunState.ERROR and run.reason.startswith("worker lost")
    assert backends_of(run) == []
    execute_run(run.pk)  # a late redelivery does nothing
    run.refresh_from_db()
    assert run.state == RunState.ERROR and log_text(run).count("$ dbt ") == 1
    # the next write of the project runs
    after = wait_final(trigger_run(project="sleepy", command="run", select="fast", actor=operator, source="api"))
    assert after.state == RunState.SUCCESS, after.reason


@needs_redis
def test_sigterm_to_qcluster_cancels_or_finishes_every_running_run(cluster, operator):
    runs = [
        trigger_run(
            project="sleepy", command="run", select=select, vars={"sleep_seconds": 120}, actor=operator, source="api"
        )
        for select in ("slow", "fast")
    ]
    slow = wait_for(runs[0], lambda r: r.node_results.filter(unique_id="model.sleepy.slow", status="running").exists())
    wait_for(runs[1], lambda r: r.state != RunState.QUEUED)  # taken by the other worker (it waits for the lock)
    os.killpg(cluster.process.pid, signal.SIGTERM)  # a service manager stopping the whole group
    for run in runs:
        run = wait_final(run, timeout=60)
        assert run.state in (RunState.SUCCESS, RunState.CANCELLED), run.reason
        assert not run.process_group or not group_alive(run.process_group)
    slow.refresh_from_db()
    assert slow.state == RunState.CANCELLED and "queue worker was stopped" in slow.reason
    assert backends_of(slow) == [] and advisory_lock_free(slow)


@needs_redis
def test_redis_restarted_with_queued_runs_runs_each_exactly_once(
    broker, tmp_path, seeded_warehouse, transactional_db, operator
):
    runs = [trigger_run(project="sleepy", command="run", select="fast", actor=operator, source="api") for _ in range(2)]
    broker.stop()  # the broker restarts without what it held
    broker.start()
    assert drain_queue() == []
    cluster = QueueCluster(tmp_path, broker.url)
    try:
        with override_settings(RUN_REQUEUE_AFTER_SECONDS=0):
            assert reap_lost_runs() == 2
        for run in runs:
            run = wait_final(run)
            assert run.state == RunState.SUCCESS, run.reason
            assert log_text(run).count("$ dbt ") == 1 and "sent again (attempt 2 of 4)" in log_text(run)
        with override_settings(RUN_REQUEUE_AFTER_SECONDS=0):
            assert reap_lost_runs() == 0
    finally:
        cluster.stop()


def test_a_cancel_never_signals_a_process_that_got_the_pid_of_the_runs_dbt(transactional_db, tmp_path, settings):
    """dbt ended and another process took its pid, leading a process group of its own (the
    decoy, in a session of its own). A cancel reaching the worker's follow loop, and the end
    of the invocation, leave it alone: its stdout is not the run's dbt log."""
    settings.RUNS_DIR = tmp_path / "runs"
    now = timezone.now()
    run = Run.objects.create(
        project="sleepy", command="run", timeout_seconds=60, source="api", state=RunState.RUNNING,
        started_at=now, cancel_requested_at=now, reason="cancel requested by otto_operator",
    )  # fmt: skip
    work = run_dir(run.pk)
    work.mkdir(parents=True)
    invocation = DbtInvocation(
        command="run", argv=["run"], cwd=work, target_path=work / "target", log_path=work / "logs",
        output_file=work / "dbt-1.jsonl", exit_file=work / "dbt-1.exit",
    )  # fmt: skip
    invocation.output_file.touch()
    started = subprocess.run(  # not this process's child: gone once it ends, as a stranger's process is
        ["sh", "-c", "setsid sleep 120 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True
    )
    decoy = int(started.stdout)
    wait_until(lambda: os.getpgid(decoy) == decoy, "the decoy to lead its process group", timeout=10)
    try:
        invocation.process = DbtProcess(decoy, invocation.exit_file, invocation.output_file)
        execution = RunExecution(run)
        execution.follow(invocation, NodeProgress(run, execution.log, "run", step=1))
        execution.end_dbt(invocation)
        execution.log.flush()
        assert group_alive(decoy), "the worker signalled a process that is not the run's dbt"
        assert "stopping dbt" not in log_text(run)
    finally:
        signal_group(decoy, signal.SIGKILL)


def test_the_runs_end_never_signals_a_process_that_got_the_pid_of_the_runs_dbt(transactional_db, tmp_path, settings):
    """dbt ended and another process took its pid, leading a process group of its own (the
    decoy). The run's end, which releases its write lock only once its dbt is gone, leaves
    that process alone and ends the run."""
    settings.RUNS_DIR = tmp_path / "runs"
    run = Run.objects.create(
        project="sleepy", command="run", timeout_seconds=60, source="api", state=RunState.RUNNING,
        started_at=timezone.now(),
    )  # fmt: skip
    run_dir(run.pk).mkdir(parents=True)
    (run_dir(run.pk) / "dbt-1.jsonl").touch()
    started = subprocess.run(
        ["sh", "-c", "setsid sleep 120 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True
    )
    decoy = int(started.stdout)
    wait_until(lambda: os.getpgid(decoy) == decoy, "the decoy to lead its process group", timeout=10)
    try:
        execution = RunExecution(run)
        execution.write_lock.acquire(lambda: None)
        execution.process_group = decoy  # the run's dbt had this pid
        execution.finish(RunState.SUCCESS, "", 0)
        assert group_alive(decoy), "the run's end signalled a process that is not the run's dbt"
        run.refresh_from_db()
        assert run.state == RunState.SUCCESS and "run ended: success" in log_text(run)
    finally:
        signal_group(decoy, signal.SIGKILL)
