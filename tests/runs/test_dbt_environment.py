"""dbt sees an allowlist of the worker's environment: a project's env_var() cannot read the
portal's secrets (issue 11, S7)."""

from __future__ import annotations

import json

from django.conf import settings

from runs.models import RunState
from runs.services import project_state_dir, trigger_run
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


def test_validations_parse_sees_no_portal_connection_variable(
    transactional_db, dbt_projects_dir, operator, settings, tmp_path
):
    """A run's trigger with a selector parses the project (validation): its env_var() reads the portal's
    warehouse password there no more than a run's dbt does. The envprobe model's meta keeps
    what parse saw, in the manifest the run was validated against."""
    settings.RUNS_DIR = tmp_path / "runs"  # no manifest yet: this trigger parses
    settings.DBT_ENV = {**settings.DBT_ENV, "DBT_PASSWORD": "portal-warehouse-password-4711", "DBT_USER": "portal"}
    trigger_run(project="envprobe", command="run", select="env_probe", actor=operator, source="command", enqueue=False)
    manifest = json.loads((project_state_dir("envprobe") / "manifest.json").read_text())
    meta = manifest["nodes"]["model.envprobe.env_probe"]["config"]["meta"]
    assert meta == {"parse_password": "absent", "parse_user": "absent"}
