"""Worker identity with real queue clusters, each with its own PORTAL_WORKER_NAME and
RUNS_DIR (two "hosts" on this machine): runs record who claimed them, the reaper of one
name never signals another name's dbt, a worker starting under a reaped name stops the dbt
its runs left before it takes work, and a cancel from the web reaches the run's worker
through the database."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django_q.conf import Conf

from dbtlib.launcher import group_alive, signal_group
from runs.models import Run, RunState, Worker
from runs.reaper import reap_lost_runs
from runs.services import trigger_run
from tests.conftest import SESSION_WORKER_NAME
from tests.hosts import Host
from tests.runs.conftest import wait_final, wait_for, wait_until
from tests.runs.test_worker import backends_of, log_text

REPO = Path(__file__).resolve().parents[2]
GATE = 4242  # the sleepy project's `gated` model waits while this advisory lock is held


@pytest.fixture
def clusters(tmp_path, monkeypatch, dbt_projects_dir, warehouse_conninfo, transactional_db) -> Iterator:
    """Starts clusters on a queue of this test's own (no other cluster of the session reads it)."""
    queue = f"portal-identity-{os.urandom(4).hex()}"
    monkeypatch.setattr(Conf, "PREFIX", queue)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", queue)
    started: list[Host] = []
    env = {
        **os.environ,
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "QUEUE_NAME": queue,
        "QUEUE_WORKERS": "1",
        "RUN_CANCEL_GRACE_SECONDS": "2",
        "RUN_HEARTBEAT_SECONDS": "1",
    }

    def start(name: str | None, runs_dir: Path) -> Host:
        """A worker host (one worker process) under a name and RUNS_DIR of its own."""
        started.append(Host("worker", name, tmp_path, env, runs_dir=runs_dir).start())
        return started[-1]

    yield start
    for cluster in started:
        cluster.kill()


@pytest.fixture
def gate() -> Iterator[psycopg.Connection]:
    """Holds the gate shut: a `gated` run stays inside its warehouse query until released."""
    conn = psycopg.connect(settings.WAREHOUSE_CONNINFO, autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s)", [GATE])
    yield conn
    conn.close()


def gated(operator) -> Run:
    return trigger_run(project="sleepy", command="run", select="gated", actor=operator, source="api")


def in_dbt(run: Run) -> Run:
    return wait_for(run, lambda r: r.node_results.filter(unique_id="model.sleepy.gated", status="running").exists())


def fast(operator) -> Run:
    return wait_final(trigger_run(project="sleepy", command="run", select="fast", actor=operator, source="api"))


def test_two_clusters_record_their_own_names_and_beat_the_registry(clusters, tmp_path, operator, api_client):
    """One after the other (a cluster's pusher prefetches a task, so which of two idle clusters
    takes a run is not for the test to say); the registry keeps both."""
    default = clusters(None, tmp_path / "runs-a")
    first = fast(operator)
    default.kill()
    clusters("identity-b", tmp_path / "runs-b")
    second = fast(operator)
    assert first.state == second.state == RunState.SUCCESS, (first.reason, second.reason)
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    assert socket.gethostname() in first.worker and boot_id in first.worker
    assert second.worker == "identity-b"
    assert first.worker_pid and second.worker_pid and first.worker_pid != second.worker_pid
    api_client.force_authenticate(operator)
    listed = {w["name"]: w for w in api_client.get("/api/v1/workers/").json()}
    assert set(listed) - {SESSION_WORKER_NAME} == {first.worker, "identity-b"} and listed["identity-b"]["alive"]
    assert listed["identity-b"]["pid"] != listed[first.worker]["pid"]
    assert api_client.get(f"/api/v1/runs/{second.pk}/").json()["worker"] == "identity-b"


def test_a_second_host_under_a_name_that_beats_refuses_to_start(clusters, tmp_path, operator):
    clusters("identity-b", tmp_path / "runs-b")
    log = tmp_path / "identity-b" / "worker.log"  # the two hosts share it: the first's part first
    first_part = log.read_text()
    second = clusters("identity-b", tmp_path / "runs-b2")  # another host, the same PORTAL_WORKER_NAME
    assert second.process.wait(timeout=120) == 1
    said = log.read_text()[len(first_part) :]
    assert "PORTAL_WORKER_NAME=identity-b is in use by" in said and "give each worker host its own name" in said
    assert "ready for work" not in said
    run = fast(operator)
    assert run.state == RunState.SUCCESS and run.worker == "identity-b", run.reason


def test_a_reaper_leaves_another_names_dbt_and_that_name_stops_it_when_it_starts_again(
    clusters, tmp_path, gate, operator
):
    runs_b = tmp_path / "runs-b"
    # two slow nodes one after the other: the reaper's termination of the run's warehouse
    # connection ends the first, the second keeps the orphaned dbt alive for the restart to find
    lost = trigger_run(
        project="sleepy", command="run", select="gated slow", threads=1, vars={"sleep_seconds": 120},
        actor=operator, source="api",
    )  # fmt: skip
    b = clusters("identity-b", runs_b)
    lost = wait_for(lost, lambda r: r.node_results.filter(status="running").exists())
    assert lost.worker == "identity-b" != settings.PORTAL_WORKER_NAME
    dbt = lost.process_group
    b.kill()  # cluster B's host "dies": its dbt (own session) is left running, orphaned
    assert group_alive(dbt)
    with override_settings(RUN_STALE_AFTER_SECONDS=5):  # this test process reaps, under its own name
        wait_until(lambda: reap_lost_runs() or Run.objects.get(pk=lost.pk).is_final, "the reaper", timeout=60)
    lost.refresh_from_db()
    assert lost.state == RunState.ERROR and lost.reason.startswith("worker lost: no heartbeat from identity-b")
    assert group_alive(dbt), "the reaper signalled another worker's dbt"
    assert lost.process_group == dbt  # kept for its owner
    assert "belongs to worker identity-b" in log_text(lost)

    said = f"worker start (identity-b): stopped this run's leftover dbt (process group {dbt})"
    try:
        clusters("identity-b", runs_b)  # B starts again under its name
        wait_until(lambda: said in log_text(lost), "the restarted worker to stop the leftover dbt", timeout=60)
        assert not group_alive(dbt)
    finally:
        signal_group(dbt, signal.SIGKILL)  # never leave it behind, whatever happened
    lost.refresh_from_db()
    assert lost.process_group is None and lost.state == RunState.ERROR
    wait_until(lambda: backends_of(lost) == [], "the stopped dbt's warehouse connections to close", timeout=30)
    gate.execute("SELECT pg_advisory_unlock(%s)", [GATE])
    after = fast(operator)
    assert after.state == RunState.SUCCESS and after.worker == "identity-b", after.reason
    assert Worker.objects.get(name="identity-b").heartbeat_at > lost.finished_at


def test_a_cancel_from_the_web_reaches_a_run_held_by_another_worker(clusters, tmp_path, gate, operator, client):
    run = gated(operator)
    clusters("identity-b", tmp_path / "runs-b")
    run = in_dbt(run)
    wait_until(lambda: backends_of(run), "the gated query to hold a warehouse connection of the run", timeout=60)
    client.force_login(operator)
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 302
    run = wait_final(run, timeout=30)
    assert run.state == RunState.CANCELLED and "cancelled by otto_operator" in run.reason
    assert run.worker == "identity-b" and not group_alive(run.process_group)
    assert backends_of(run) == []
    assert "cancel requested: stopping dbt" in log_text(run)
