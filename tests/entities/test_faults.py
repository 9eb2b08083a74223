"""Cancel and timeout reach a refresh stuck inside SQL (a locked raw table, another rules
engine run holding the run lock): the run ends cancelled and none of its warehouse
connections is left. Real queue worker, real warehouse."""

from __future__ import annotations

import psycopg
import pytest

from entities.rules.engine import TRY_RUN_LOCK
from runs.backends import application_name
from runs.models import RunState
from tests.entities.conftest import query
from tests.entities.test_refresh import refresh
from tests.runs.conftest import wait_final, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def run_backends(warehouse: str, run_id: int) -> int:
    statement = "select count(*) from pg_stat_activity where application_name = %s"
    return query(warehouse, statement, (application_name(run_id),))[0][0]


def log_of(run) -> str:
    return "\n".join(run.log_chunks.values_list("text", flat=True))


def cancel(api_client, run) -> None:
    response = api_client.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert response.status_code == 202, response.json()


def test_cancel_reaches_a_rules_engine_read_stuck_on_a_locked_raw_table(
    queue_cluster, entity_types, warehouse, api_client, operator
):
    blocker = psycopg.connect(warehouse)
    blocker.execute("lock table raw.users in access exclusive mode")
    try:
        run = refresh(api_client, operator)
        wait_for(run, lambda r: r.state == RunState.RUNNING and run_backends(warehouse, r.pk) > 0)
        waiting = "select count(*) from pg_locks where not granted and relation = 'raw.users'::regclass"
        wait_for(run, lambda r: query(warehouse, waiting)[0][0] > 0)
        cancel(api_client, run)
        run = wait_final(run, timeout=60)  # the table stays locked all along
        assert run.state == RunState.CANCELLED, run.reason
        assert run.reason.startswith("cancelled by otto_operator"), run.reason
        assert run_backends(warehouse, run.pk) == 0
    finally:
        blocker.rollback()
        blocker.close()
    assert query(warehouse, "select count(*) from rules_engine.users")[0][0] == 106, "the live table is untouched"


def test_a_refresh_waiting_for_the_rules_engine_lock_says_so_and_can_be_cancelled(
    queue_cluster, entity_types, warehouse, api_client, operator
):
    holder = psycopg.connect(warehouse, autocommit=True, application_name="another-rules-engine")
    assert holder.execute(TRY_RUN_LOCK).fetchone()[0]
    try:
        run = refresh(api_client, operator)
        reason = "rules engine: waiting for another rules engine run (another-rules-engine) to finish"
        wait_for(run, lambda r: r.reason == reason)
        assert reason in log_of(run)
        cancel(api_client, run)
        run = wait_final(run, timeout=60)  # the lock stays held all along
        assert run.state == RunState.CANCELLED, run.reason
        assert run_backends(warehouse, run.pk) == 0
    finally:
        holder.close()
