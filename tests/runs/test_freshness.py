"""Source freshness end to end: inventory_transforms' raw data made stale in the real
warehouse (its `_loaded_at` set relative to now), `dbt source freshness` run by the worker's
code in the test process with real dbt, then what the freshness page, the API and the
failure alert say."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from django.template import Context, Template
from psycopg import sql

from dbtlib.artifacts import read_sources, threshold_seconds
from dbtlib.invocation import DbtInvocation
from lineage import freshness
from runs.models import Run, RunState
from runs.notifications import create_target, notify_run
from runs.services import trigger_run
from runs.worker import RunExecution, execute_run

pytestmark = pytest.mark.usefixtures("transactional_db", "seeded_warehouse")

PROJECT = "inventory_transforms"
HOUR = 3600.0
RAW = ("users", "applications")


@pytest.fixture
def loaded(warehouse_conninfo) -> Iterator[Callable[[float], None]]:
    """loaded(hours) makes every raw row look loaded that many hours before now; the rows are
    made fresh again afterwards."""

    def load(hours: float) -> None:
        with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
            for table in RAW:
                conn.execute(
                    sql.SQL("update {} set _loaded_at = now() - make_interval(secs => %s)").format(
                        sql.Identifier("raw", table)
                    ),
                    [hours * HOUR],
                )

    yield load
    load(0)


def freshness_run(operator) -> Run:
    run = trigger_run(project=PROJECT, command="source freshness", actor=operator, source="api")
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def log_text(run: Run) -> str:
    return "\n".join(chunk.text for chunk in run.log_chunks.order_by("first_line"))


def test_stale_raw_data_warns_then_errors_fails_the_run_and_alerts(
    operator, viewer, loaded, webhook, client, api_client
):
    hook, url = webhook
    create_target(actor=operator, source="web", project=PROJECT, webhook_url=url)

    loaded(30)  # past warn_after (24 h), before error_after (48 h)
    warned = freshness_run(operator)
    assert warned.state == RunState.SUCCESS, warned.reason  # a warning does not fail dbt
    latest = {row.source: row for row in freshness.latest(PROJECT)}
    assert {source: row.status for source, row in latest.items()} == {"raw.applications": "warn", "raw.users": "warn"}
    users = latest["raw.users"]
    assert 30 * HOUR <= users.age_seconds < 31 * HOUR and users.age_now() >= users.age_seconds
    assert (users.warn_after_seconds, users.error_after_seconds) == (24 * HOUR, 48 * HOUR)
    assert users.criteria["error_after"] == {"count": 48, "period": "hour"}
    assert users.run_id == warned.pk and (users.snapshotted_at - users.max_loaded_at).total_seconds() >= 30 * HOUR

    loaded(72)  # past error_after
    failed = freshness_run(operator)
    assert (failed.state, failed.exit_code) == (RunState.FAILED, 1), failed.reason
    assert "raw.users" in failed.reason or "users" in failed.reason
    history = freshness.history(PROJECT)
    assert [row.status for row in history["source.inventory_transforms.raw.users"]] == ["error", "warn"]
    assert [row.run_id for row in history["source.inventory_transforms.raw.users"]] == [failed.pk, warned.pk]

    client.force_login(viewer)
    page = client.get(f"/lineage/{PROJECT}/freshness/")
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count('data-testid="freshness-status">error<') == 2
    assert 'data-testid="freshness-age">3 d<' in body and 'data-status="warn"' in body
    assert f'href="/runs/{failed.pk}/"' in body and "1 d" in body and "2 d" in body  # 24 h and 48 h
    assert f"/lineage/{PROJECT}/freshness/" in client.get(f"/lineage/{PROJECT}/").content.decode()

    api_client.force_authenticate(viewer)
    answer = api_client.get(f"/api/v1/projects/{PROJECT}/freshness/", {"history": 5})
    assert answer.status_code == 200, answer.content
    by_source = {item["source"]: item for item in answer.json()}
    assert set(by_source) == {"raw.users", "raw.applications"}
    assert by_source["raw.users"]["status"] == "error" and by_source["raw.users"]["run_id"] == failed.pk
    assert [h["status"] for h in by_source["raw.users"]["history"]] == ["error", "warn"]
    assert by_source["raw.users"]["age_seconds"] >= 72 * HOUR
    assert "history" not in api_client.get(f"/api/v1/projects/{PROJECT}/freshness/").json()[0]
    assert api_client.get(f"/api/v1/projects/{PROJECT}/freshness/", {"history": "0"}).status_code == 400

    summary = Template("{% load freshness %}{% freshness_summary %}").render(Context({}))
    assert 'data-status="error">error 2<' in summary and 'data-status="pass">pass 0<' in summary
    assert f'href="/lineage/{PROJECT}/freshness/">{PROJECT} · raw.users<' in summary

    # The queue task each final run enqueued: only the failed run alerts.
    assert notify_run(warned.pk) == 0 and notify_run(failed.pk) == 1
    assert [(m["run_id"], m["state"]) for m in hook.received] == [(failed.pk, "failed")]


def test_a_source_dbt_cannot_age_is_a_runtime_error(operator, warehouse_conninfo, loaded):
    """dbt leaves a runtime error (here: the loaded-at column is gone) out of sources.json and
    only logs it; the portal records it all the same, and the run fails."""
    rename = "alter table raw.applications rename column {} to {}"
    with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
        conn.execute(rename.format("_loaded_at", "_loaded_at_moved"))
    try:
        run = freshness_run(operator)
    finally:
        with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
            conn.execute(rename.format("_loaded_at_moved", "_loaded_at"))
    assert run.state == RunState.FAILED, run.reason
    latest = {row.source: row for row in freshness.latest(PROJECT)}
    assert (latest["raw.users"].status, latest["raw.applications"].status) == ("pass", "runtime error")
    applications = latest["raw.applications"]
    assert applications.age_seconds is None and applications.error_after_seconds == 48 * HOUR
    assert 'column "_loaded_at" does not exist' in applications.error


def test_a_project_without_freshness_criteria_checks_nothing_and_records_nothing(operator):
    run = trigger_run(project="sleepy", command="source freshness", actor=operator, source="api")
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS, run.reason
    assert freshness.latest("sleepy") == [] and "warning:" not in log_text(run)


@pytest.mark.parametrize(
    "content, warning",
    [
        (None, "dbt wrote no sources.json"),
        ("{not json", "sources.json is not valid JSON"),
        ('{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json"}, "results": []}',
         "not dbt's sources v1–v3"),
        ('{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json"}, "results": [{}]}',
         "a result that is not a source's freshness"),
    ],
)  # fmt: skip
def test_a_missing_or_garbled_sources_file_is_a_warning_in_the_run_log(operator, tmp_path, content, warning):
    """What the worker does with the file dbt left (or did not): a warning, nothing recorded."""
    run = trigger_run(project=PROJECT, command="source freshness", actor=operator, source="api", enqueue=False)
    invocation = DbtInvocation.prepare(
        "source freshness", project_dir=tmp_path, profiles_dir=tmp_path, work_dir=tmp_path / "work"
    )
    if content is not None:
        (invocation.target_path / "sources.json").write_text(content)
    execution = RunExecution(run)
    assert execution.read_freshness(invocation, None) is None
    execution.log.flush()
    assert warning in log_text(run) and freshness.latest(PROJECT) == []


def test_sources_json_is_read_field_by_field(tmp_path):
    """The reader on a v3 file as dbt writes it, with the shapes it tolerates."""
    path = tmp_path / "sources.json"
    path.write_text(
        json.dumps(
            {
                "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/sources/v3.json"},
                "results": [
                    {
                        "unique_id": "source.p.raw.users", "status": "warn",
                        "max_loaded_at": "2026-01-01T00:00:00+00:00", "snapshotted_at": "2026-01-02T06:00:00Z",
                        "max_loaded_at_time_ago_in_s": 108000.0,
                        "criteria": {
                            "warn_after": {"count": 1, "period": "day"},
                            "error_after": {"count": 90, "period": "minute"},
                        },
                    },
                    {"unique_id": "source.p.raw.gone", "status": "runtime error", "error": "relation does not exist"},
                    {"unique_id": "source.p.raw.odd", "status": "pass", "max_loaded_at": "yesterday",
                     "snapshotted_at": "2026-01-02T06:00:00", "max_loaded_at_time_ago_in_s": -5},
                ],
            }
        )
    )  # fmt: skip
    users, gone, odd = read_sources(path)
    assert (users.source, users.status, users.age_seconds) == ("raw.users", "warn", 108000.0)
    assert users.max_loaded_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert users.snapshotted_at == datetime(2026, 1, 2, 6, tzinfo=UTC)
    assert threshold_seconds(users.criteria, "warn_after") == 86400
    assert threshold_seconds(users.criteria, "error_after") == 5400
    assert (gone.status, gone.error, gone.max_loaded_at) == ("runtime error", "relation does not exist", None)
    assert threshold_seconds(gone.criteria, "warn_after") is None
    assert (odd.max_loaded_at, odd.age_seconds, odd.snapshotted_at.tzinfo) == (None, None, UTC)
