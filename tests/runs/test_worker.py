"""Runs executed by a real django-q2 cluster running real dbt against real PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_q.models import Task

from accounts.models import ApiToken
from dbtlib.launcher import group_alive
from kernel.errors import RequestError
from lineage.models import NodeStatus, Snapshot
from runs.backends import application_name
from runs.models import Run, RunState
from runs.notifications import create_target
from runs.reaper import reap_lost_runs
from runs.services import cancel_run, enqueue, trigger_run
from runs.worker import execute_run
from tests.runs.conftest import wait_final, wait_for, wait_until


def backends_of(run: Run) -> list[int]:
    with psycopg.connect(settings.WAREHOUSE_CONNINFO, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name(run.pk)])
        return [row[0] for row in rows]


def log_text(run: Run) -> str:
    return "\n".join(chunk.text for chunk in run.log_chunks.order_by("first_line"))


def test_green_build_records_node_results(runs_cluster, operator, api_client, client):
    run = trigger_run(project="inventory_transforms", command="build", actor=operator, source="web")
    run = wait_final(run)
    assert run.state == RunState.SUCCESS, run.reason
    assert run.exit_code == 0 and run.nodes_total == run.nodes_done > 0 and run.nodes_failed == 0
    fct = run.node_results.get(unique_id="model.inventory_transforms.fct_users")
    assert fct.status == "success" and fct.rows_affected and fct.compiled_path.endswith("fct_users.sql")
    assert "Completed successfully" in log_text(run) or "PASS=" in log_text(run)
    api_client.force_authenticate(operator)
    nodes = api_client.get(f"/api/v1/runs/{run.pk}/nodes/").json()
    assert {n["unique_id"] for n in nodes} >= {
        "model.inventory_transforms.fct_users",
        "seed.inventory_transforms.users",
    }
    tail = api_client.get(f"/api/v1/runs/{run.pk}/log/?offset=2").json()
    assert tail["final"] and tail["offset"] == 2 and tail["next_offset"] == run.log_lines
    sql = api_client.get(f"/api/v1/runs/{run.pk}/artifacts/compiled.sql?node=model.inventory_transforms.fct_users")
    assert sql.status_code == 200 and b"select" in b"".join(sql.streaming_content).lower()
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Success" in page and "fct_users" in page and "/lineage/inventory_transforms/nodes/" in page
    assert not (Path(settings.RUNS_DIR) / str(run.pk)).exists()  # stored, then the run's directory went
    # the run handed its manifest and node results to lineage
    assert Snapshot.objects.get(project="inventory_transforms", is_current=True).run_id == run.pk
    assert NodeStatus.objects.get(unique_id="model.inventory_transforms.fct_users").run_id == run.pk


def test_failing_model_is_failed_with_the_node_error_on_page_and_api(
    runs_cluster, operator, api_client, client, webhook
):
    hook, url = webhook
    create_target(actor=operator, source="api", project="sleepy", emails="team@example.com", webhook_url=url)
    run = wait_final(trigger_run(project="sleepy", command="run", select="broken fast", actor=operator, source="api"))
    assert run.state == RunState.FAILED and run.exit_code == 1
    assert "broken" in run.reason
    broken = run.node_results.get(unique_id="model.sleepy.broken")
    assert broken.status == "error" and "sleepy_missing_schema" in broken.message
    assert run.node_results.get(unique_id="model.sleepy.fast").status == "success"
    api_client.force_authenticate(operator)
    nodes = api_client.get(f"/api/v1/runs/{run.pk}/nodes/").json()
    assert nodes[0]["unique_id"] == "model.sleepy.broken" and "sleepy_missing_schema" in nodes[0]["message"]
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Failed" in page and "sleepy_missing_schema" in page and "1 failed" in page

    def both_recorded() -> list:
        # A delivery is recorded once its POST has returned: wait for both rows, not for the far end.
        found = list(run.notifications.order_by("channel"))
        return found if len(found) == 2 else []

    deliveries = wait_until(both_recorded, "both deliveries (email, webhook) to be recorded")
    assert [(d.channel, d.status) for d in deliveries] == [("email", "sent"), ("webhook", "sent")]
    assert hook.received[0]["run_id"] == run.pk and hook.received[0]["state"] == "failed"


def test_an_unreachable_environment_is_error_with_the_message(runs_cluster, operator, admin_user):
    from runs.environments import create_environment

    create_environment(
        actor=admin_user, source="api", project="sleepy", name="down", host="127.0.0.1", port=1, is_default=True
    )
    run = wait_final(trigger_run(project="sleepy", command="run", select="fast", actor=operator, source="api"))
    assert run.state == RunState.ERROR and run.exit_code == 2
    assert "port 1" in run.reason, run.reason


def test_timeout_ends_timed_out_with_no_backend_left(runs_cluster, operator):
    run = trigger_run(project="sleepy", command="run", select="slow", timeout_seconds=4, actor=operator, source="api")
    run = wait_final(run, timeout=90)
    assert run.state == RunState.TIMED_OUT, run.reason
    assert "timed out after 4 s" in run.reason
    assert backends_of(run) == [] and not group_alive(run.process_group)


def test_cancel_stops_dbt_and_leaves_no_query_behind(runs_cluster, operator, client):
    run = trigger_run(project="sleepy", command="run", select="slow", actor=operator, source="web")
    wait_for(run, lambda r: r.node_results.filter(unique_id="model.sleepy.slow", status="running").exists())
    wait_for(run, lambda r: backends_of(r) != [])
    client.force_login(operator)
    response = client.post(f"/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    run = wait_final(run, timeout=30)
    assert run.state == RunState.CANCELLED and "cancelled by otto_operator" in run.reason
    assert backends_of(run) == [] and not group_alive(run.process_group)
    assert "Cancelled" in client.get(f"/runs/{run.pk}/").content.decode()


def test_sigkilled_worker_is_reaped_and_not_started_again(runs_cluster, operator):
    run = trigger_run(project="sleepy", command="run", select="slow", actor=operator, source="api")
    run = wait_for(run, lambda r: r.state == RunState.RUNNING and r.process_group)
    dbt = run.process_group
    os.kill(run.worker_pid, signal.SIGKILL)
    time.sleep(6)
    run.refresh_from_db()
    assert run.state == RunState.RUNNING  # nobody noticed yet: the reaper owns this
    # the reaper of the run's own worker host (its name)
    with override_settings(RUN_STALE_AFTER_SECONDS=5, RUN_CANCEL_GRACE_SECONDS=2, PORTAL_WORKER_NAME=run.worker):
        assert reap_lost_runs() == 1
    run.refresh_from_db()
    assert run.state == RunState.ERROR and run.reason.startswith("worker lost")
    assert backends_of(run) == [] and not group_alive(dbt)
    assert run.process_group is None  # its own worker's reaper handled it: never signalled again
    execute_run(run.pk)  # a late redelivery does nothing
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert log_text(run).count("$ dbt ") == 1


def test_duplicate_delivery_starts_dbt_once(runs_cluster, operator):
    run = trigger_run(project="sleepy", command="run", select="fast", actor=operator, source="api")
    enqueue(run.pk)
    enqueue(run.pk)
    run = wait_final(run)
    assert run.state == RunState.SUCCESS
    deliveries = Task.objects.filter(name=f"run-{run.pk}")
    wait_until(lambda: deliveries.count() == 3, "the queue to finish all three deliveries")
    assert log_text(run).count("$ dbt ") == 1
    assert set(run.artifacts.values_list("invocation", flat=True)) == {1}


def test_concurrent_runs_keep_separate_artifacts_and_writes_wait(runs_cluster, operator):
    gate = psycopg.connect(settings.WAREHOUSE_CONNINFO, autocommit=True)
    gate.execute("SELECT pg_advisory_lock(4242)")  # the gated model runs until this is released
    try:
        slow = trigger_run(project="sleepy", command="run", select="gated", actor=operator, source="api")
        wait_for(slow, lambda r: r.node_results.filter(unique_id="model.sleepy.gated", status="running").exists())
        reader = trigger_run(project="sleepy", command="compile", select="fast", actor=operator, source="api")
        writer = trigger_run(project="sleepy", command="run", select="fast", actor=operator, source="api")
        reader = wait_final(reader)
        assert reader.state == RunState.SUCCESS  # reads overlap with the running write
        writer = wait_for(writer, lambda r: f"waiting for run #{slow.pk}" in r.reason or r.is_final)
        assert not writer.is_final, "the second write must wait for the first"
    finally:
        gate.close()
    slow, writer = wait_final(slow), wait_final(writer)
    assert slow.state == writer.state == RunState.SUCCESS
    assert writer.started_at < slow.finished_at < writer.finished_at
    keys = {r.artifacts.get(name="manifest.json").key for r in (slow, reader, writer)}
    assert len(keys) == 3
    assert all(r.artifacts.filter(name="run_results.json").exists() for r in (slow, reader, writer))


def test_cancel_service_on_finished_run_is_refused(runs_cluster, operator):
    run = wait_final(trigger_run(project="sleepy", command="ls", actor=operator, source="api"))
    assert run.state == RunState.SUCCESS
    with pytest.raises(RequestError) as refused:
        cancel_run(run, actor=operator, source="api")
    assert refused.value.code == "already_finished"


class WebServer:
    """The portal's web side in its own process (gunicorn), as in production."""

    def __init__(self, token: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.token = token
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "transformation_portal.wsgi", "--bind", self.base[7:], "--workers", "1"],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "DATABASE_NAME": connection.settings_dict["NAME"]},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, "the web server to answer", timeout=60)

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.base + "/login/", timeout=2).close()
        except OSError:
            return False
        return True

    def api(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def test_a_web_restart_loses_nothing(runs_cluster, operator):
    """The web process holds no run state: a run triggered through one web process that is
    SIGKILLed mid-run finishes, and the next web process serves its state, nodes and log."""
    token = ApiToken.issue(operator, "restart test", 1)[1]
    web = WebServer(token)
    try:
        body = {"project": "sleepy", "command": "run", "select": "slow", "vars": {"sleep_seconds": 5}}
        run_id = web.api("/api/v1/runs/", body)["id"]
        run = wait_for(Run.objects.get(pk=run_id), lambda r: r.state == RunState.RUNNING or r.is_final)
        assert not run.is_final, "the web process must die while the run is running"
    finally:
        web.kill()
    web = WebServer(token)
    try:
        run = wait_final(Run.objects.get(pk=run_id))
        assert run.state == RunState.SUCCESS, run.reason
        assert web.api(f"/api/v1/runs/{run_id}/")["state"] == "success"
        assert [n["unique_id"] for n in web.api(f"/api/v1/runs/{run_id}/nodes/")] == ["model.sleepy.slow"]
        assert "run ended: success" in web.api(f"/api/v1/runs/{run_id}/log/")["lines"]
    finally:
        web.kill()


def test_heartbeat_survives_a_database_error(transactional_db, operator):
    """F1: the heartbeat's connection is terminated under it; it reconnects and keeps beating."""
    from runs.worker import Heartbeat

    old = timezone.now() - timedelta(hours=1)
    run = Run.objects.create(
        project="sleepy", command="run", timeout_seconds=60, source="api", state=RunState.RUNNING, heartbeat_at=old
    )
    with override_settings(RUN_HEARTBEAT_SECONDS=1):
        heartbeat = Heartbeat(run.pk)
        heartbeat.start()
        try:
            wait_for(run, lambda r: r.heartbeat_at > old, timeout=30)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND query LIKE %s",
                    ['UPDATE "runs_run" SET "heartbeat_at"%'],
                )
                assert cursor.fetchall(), "the heartbeat's backend was not found"
            killed_at = timezone.now()
            wait_for(run, lambda r: r.heartbeat_at > killed_at, timeout=30)
            assert heartbeat.is_alive()
        finally:
            heartbeat.stop()
    assert not heartbeat.is_alive()


def advisory_lock_free(run: Run) -> bool:
    """Whether a run could take the write lock `run` takes now (taken and let go at once)."""
    from runs.locks import _LOCK_CLASS, write_key

    key = write_key(run)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [_LOCK_CLASS, key])
        free = cursor.fetchone()[0]
        if free:
            cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [_LOCK_CLASS, key])
    return free


def test_an_exception_while_following_dbt_stops_dbt_before_the_run_is_final(runs_cluster, operator):
    """F2: a log line PostgreSQL refuses (a NUL byte) breaks the worker's log write while dbt
    still runs; dbt is stopped before the run ends `error` and the write lock is let go."""
    run = trigger_run(
        project="sleepy", command="run", select="nul_log", vars={"sleep_seconds": 120}, actor=operator, source="api"
    )
    run = wait_final(run)
    assert not group_alive(run.process_group), "dbt outlived its run"
    assert run.state == RunState.ERROR and "NUL" in run.reason
    assert backends_of(run) == [] and advisory_lock_free(run)
    assert "stopping dbt (process group" in log_text(run)


def test_a_run_ended_elsewhere_stops_its_dbt(runs_cluster, operator):
    """F2: the reaper on another host marks a running run `error` (it cannot reach this host's
    processes); the worker notices in its follow loop and stops dbt; the verdict stands."""
    run = trigger_run(
        project="sleepy", command="run", select="slow", vars={"sleep_seconds": 120}, actor=operator, source="api"
    )
    run = wait_for(run, lambda r: r.node_results.filter(unique_id="model.sleepy.slow", status="running").exists())
    reason = "worker lost: no heartbeat from elsewhere:1 since a while"
    assert Run.objects.filter(pk=run.pk, state=RunState.RUNNING).update(
        state=RunState.ERROR, reason=reason, finished_at=timezone.now()
    )
    wait_until(lambda: not group_alive(run.process_group), "the worker to stop dbt", timeout=60)
    wait_until(lambda: "run ended: error" in log_text(run), "the worker to end its run")
    run.refresh_from_db()
    assert run.state == RunState.ERROR and run.reason == reason
    assert "this run was ended elsewhere" in log_text(run)
    assert backends_of(run) == [] and advisory_lock_free(run)


def _lost_in_queue(attempts: int) -> Run:
    """A run queued long ago whose task no worker ever took (the broker lost it)."""
    long_ago = timezone.now() - timedelta(hours=1)
    return Run.objects.create(
        project="sleepy",
        command="run",
        select="fast",
        timeout_seconds=60,
        source="api",
        queued_at=long_ago,
        enqueued_at=long_ago,
        enqueue_attempts=attempts,
        reason="waiting for a queue worker",
    )


def test_reaper_sends_a_run_lost_in_the_queue_again(transactional_db, queued):
    """F3: a queued run whose task was lost is sent to the queue again, and its log says so."""
    run = _lost_in_queue(attempts=1)
    assert reap_lost_runs() == 1
    assert queued() == ["runs.worker.execute_run"]
    run.refresh_from_db()
    assert run.state == RunState.QUEUED and run.enqueue_attempts == 2
    assert "no worker took it: sent again (attempt 2 of 4)" in log_text(run)
    assert reap_lost_runs() == 0  # just sent: it gets RUN_REQUEUE_AFTER_SECONDS again


def test_reaper_ends_a_run_still_lost_after_its_attempts_error(transactional_db, queued):
    """F3: after RUN_REQUEUE_ATTEMPTS sends more, the run ends `error`, lost in the queue."""
    run = _lost_in_queue(attempts=4)
    assert reap_lost_runs() == 1
    assert queued() == ["runs.notifications.notify_run"]  # its notifications, not the run again
    run.refresh_from_db()
    assert run.state == RunState.ERROR and run.reason.startswith("lost in the queue: sent to the queue 4 times")
    assert "reaper: lost in the queue" in log_text(run)
    execute_run(run.pk)  # a late delivery does nothing
    run.refresh_from_db()
    assert run.state == RunState.ERROR and "$ dbt " not in log_text(run)


def test_reaper_leaves_a_run_waiting_behind_busy_workers(transactional_db, queued):
    """F3: a queued run is not lost while workers are busy and none took a later task."""
    run = _lost_in_queue(attempts=4)
    Run.objects.create(
        project="sleepy",
        command="run",
        timeout_seconds=60,
        source="api",
        state=RunState.RUNNING,
        queued_at=run.queued_at - timedelta(minutes=1),
        enqueued_at=run.enqueued_at - timedelta(minutes=1),
        started_at=run.queued_at,
        heartbeat_at=timezone.now(),
    )
    assert reap_lost_runs() == 0
    run.refresh_from_db()
    assert run.state == RunState.QUEUED and queued() == []
