"""dbt sees an allowlist of the worker's environment: a project's env_var() cannot read the
portal's secrets (issue 11, S7)."""

from __future__ import annotations

from django.conf import settings

from runs.models import RunState
from runs.services import trigger_run
from runs.worker import execute_run
from tests.runs.conftest import env_probe_row


def test_a_model_reading_the_workers_secrets_sees_absent(
    transactional_db, dbt_projects_dir, warehouse_conninfo, operator, monkeypatch
):
    monkeypatch.setenv("SECRET_KEY", "the-portal-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://portal:pw@db/portal")
    monkeypatch.setenv("REDIS_URL", "redis://:pw@redis:6379/0")
    monkeypatch.setenv("PROBE_DECLARED", "declared-value")
    # What settings does for DBT_ENV_PASSTHROUGH=PROBE_DECLARED: the project's declared need.
    monkeypatch.setitem(settings.DBT_ENV, "PROBE_DECLARED", "declared-value")
    run = trigger_run(project="envprobe", command="run", actor=operator, source="command", enqueue=False)
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS, run.reason
    row = env_probe_row(warehouse_conninfo, "secret_key, database_url, redis_url, declared")
    assert row == ("absent", "absent", "absent", "declared-value")
