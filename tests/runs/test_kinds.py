"""Run kinds registered by other apps: the worker runs the handler with a RunContext
(log, dbt inside the run, cancellation) and maps its outcome to the run's state."""

from __future__ import annotations

import time

import pytest

from kernel.errors import RequestError
from runs.kinds import RunFailed, register_kind
from runs.models import Run, RunState
from runs.services import trigger_run
from runs.worker import execute_run

pytestmark = pytest.mark.django_db(transaction=True)


def refresh_ok(ctx):
    ctx.log(f"refreshing with {ctx.run.params}")
    code = ctx.dbt("run", select="fast")
    ctx.log(f"dbt said {code}")
    if code != 0:
        raise RunFailed(f"dbt exited {code}")


def refresh_failed(ctx):
    raise RunFailed("parity 97.0% is below 99%")


def refresh_crashed(ctx):
    raise ValueError("rules engine exploded")


def busy_without_logging(ctx):
    time.sleep(2.5)
    beat = Run.objects.get(pk=ctx.run.pk).heartbeat_at
    if not beat > ctx.run.started_at:
        raise RunFailed("no heartbeat while the handler was busy")


register_kind("test-busy", busy_without_logging, "Test busy")
register_kind("test-refresh", refresh_ok, "Test refresh")
register_kind("test-failed", refresh_failed, "Test failed")
register_kind("test-crashed", refresh_crashed, "Test crashed")


def run_kind(kind: str, operator) -> Run:
    run = trigger_run(project="sleepy", kind=kind, params={"entity": "users"}, actor=operator, source="web")
    execute_run(run.pk)  # what a queue worker does, here in the test process
    run.refresh_from_db()
    return run


def test_handler_with_dbt_inside_the_run_succeeds(operator, seeded_warehouse):
    run = run_kind("test-refresh", operator)
    assert run.state == RunState.SUCCESS, run.reason
    log = "\n".join(run.log_chunks.values_list("text", flat=True))
    assert "refreshing with {'entity': 'users'}" in log and "dbt said 0" in log
    assert run.node_results.get(unique_id="model.sleepy.fast").status == "success"
    assert run.title == "test-refresh"


def test_handler_outcomes_map_to_states(operator, dbt_projects_dir):
    failed = run_kind("test-failed", operator)
    assert failed.state == RunState.FAILED and failed.reason == "parity 97.0% is below 99%"
    crashed = run_kind("test-crashed", operator)
    assert crashed.state == RunState.ERROR and crashed.reason == "rules engine exploded"


def test_unknown_kind_is_refused(operator, dbt_projects_dir):
    with pytest.raises(RequestError) as err:
        trigger_run(project="sleepy", kind="nope", actor=operator, source="api")
    assert err.value.field == "kind"


def test_heartbeat_goes_on_while_a_handler_is_busy(operator, dbt_projects_dir, settings):
    settings.RUN_HEARTBEAT_SECONDS = 1
    run = run_kind("test-busy", operator)
    assert run.state == RunState.SUCCESS, run.reason


def sql_without_logging(ctx):
    import psycopg
    from django.conf import settings

    with psycopg.connect(settings.WAREHOUSE_CONNINFO, application_name=ctx.application_name) as conn:
        conn.execute("select pg_sleep(30)")


register_kind("test-long-sql", sql_without_logging, "Test long SQL")


def test_timeout_reaches_a_handler_inside_one_long_statement(operator, seeded_warehouse):
    run = trigger_run(project="sleepy", kind="test-long-sql", timeout_seconds=1, actor=operator, source="web")
    execute_run(run.pk)
    run.refresh_from_db()
    assert (run.state, run.reason) == (RunState.TIMED_OUT, "timed out after 1 s")
    assert "AdminShutdown" not in "\n".join(run.log_chunks.values_list("text", flat=True))
