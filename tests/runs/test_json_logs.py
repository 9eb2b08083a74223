"""LOG_FORMAT=json: one JSON object per line, and every line of a run's lifecycle (trigger,
claim, end) names its run, project, job and user, with real dbt executed by the worker's code
in the test process."""

from __future__ import annotations

import io
import json
import logging.config

import pytest
from django.conf import settings

from runs.jobs import create_job, trigger_job
from runs.models import RunState
from runs.worker import execute_run
from transformation_portal.logformat import logging_config

pytestmark = pytest.mark.usefixtures("transactional_db", "dbt_projects_dir")


@pytest.fixture
def json_log():
    """The portal's logging as LOG_FORMAT=json configures it; its console handler (the one every
    logger writes through) writes into the returned buffer instead of stderr."""
    logging.config.dictConfig(logging_config("json", "INFO"))
    buffer = io.StringIO()
    (console,) = logging.getLogger().handlers
    console.setStream(buffer)
    yield buffer
    logging.config.dictConfig(settings.LOGGING)


def test_every_line_of_a_runs_lifecycle_is_json_naming_the_run_project_job_and_user(operator, json_log):
    job = create_job(actor=operator, source="api", project="chain", name="listing", steps=["dbt ls"])
    run = trigger_job(job, actor=operator, source="api")
    logging.getLogger("tests").info("outside any run")
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS, run.reason

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]  # each line parses
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    of_run = [line for line in lines if line.get("run_id") == run.pk]
    messages = [line["message"] for line in of_run]
    assert any("triggered" in m for m in messages), messages
    assert any("claimed by worker" in m for m in messages), messages
    assert any(m.startswith(f"run {run.pk} ended success") for m in messages), messages
    assert {(line["project"], line["job"], line["user"]) for line in of_run} == {("chain", "listing", "otto_operator")}
    outside = next(line for line in lines if line["message"] == "outside any run")
    assert "run_id" not in outside


def test_an_unknown_log_format_stops_the_start_naming_it():
    from tests.test_settings import manage

    result = manage("check", LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT='xml': use text or json" in result.stderr
