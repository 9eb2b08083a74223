"""Heavy reads any viewer can start (issue 11, S9): lineage search and the audit list run
under VIEWER_STATEMENT_TIMEOUT_MS (a query held up — here by a lock another session holds —
is stopped and answered 503 query_timeout, page and API); the audit JSON export streams."""

from __future__ import annotations

import json
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from audit.models import AuditEvent
from audit.services import record
from lineage.models import Node
from tests.lineage.conftest import PROJECT


@contextmanager
def table_locked(model):
    """Another session holds an ACCESS EXCLUSIVE lock on the model's table (the test's rows
    are committed first: transactional_db)."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params) as other:
        other.execute("SET lock_timeout = '20s'")
        # Without a viewer timeout the request would wait for ever: the lock goes after 15 s idle.
        other.execute("SET idle_in_transaction_session_timeout = '15s'")
        other.execute(f"LOCK TABLE {model._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        yield
        if not other.closed:
            other.rollback()


@pytest.fixture
def short_timeout(settings):
    settings.VIEWER_STATEMENT_TIMEOUT_MS = 300


def test_lineage_search_held_up_is_503_query_timeout(
    transactional_db, client, api_client, viewer, snapshot, short_timeout
):
    api_client.force_authenticate(viewer)
    client.force_login(viewer)
    with table_locked(Node):
        answer = api_client.get(f"/api/v1/projects/{PROJECT}/nodes/", {"search": "users"})
        page = client.get(f"/lineage/{PROJECT}/", {"q": "users"})
    assert answer.status_code == 503, answer.content
    assert answer.json()["code"] == "query_timeout" and "VIEWER_STATEMENT_TIMEOUT_MS" in answer.json()["detail"]
    assert page.status_code == 503 and "took longer than 300 ms" in page.content.decode()
    # the limit is the viewer's query only: without the lock the same search answers
    assert api_client.get(f"/api/v1/projects/{PROJECT}/nodes/", {"search": "users"}).status_code == 200


def test_audit_list_held_up_is_503_query_timeout(transactional_db, client, api_client, viewer, short_timeout):
    record(viewer, "test.event")
    api_client.force_authenticate(viewer)
    client.force_login(viewer)
    with table_locked(AuditEvent):
        answer = api_client.get("/api/v1/audit/")
        page = client.get("/audit/")
    assert answer.status_code == 503 and answer.json()["code"] == "query_timeout", answer.content
    assert page.status_code == 503 and "took longer than 300 ms" in page.content.decode()
    assert client.get("/audit/").status_code == 200


@pytest.mark.django_db
def test_audit_json_export_streams_every_event(client, viewer):
    for i in range(3):
        record(viewer, "test.event", ("runs.run", i), reason=f"event {i}")
    client.force_login(viewer)
    export = client.get("/audit/", {"action": "test.", "format": "json"})
    assert export.streaming and export["Content-Type"] == "application/json"
    rows = json.loads(b"".join(export.streaming_content))
    assert [(r["target_id"], r["reason"]) for r in rows] == [("0", "event 0"), ("1", "event 1"), ("2", "event 2")]
    empty = client.get("/audit/", {"action": "nothing.", "format": "json"})
    assert json.loads(b"".join(empty.streaming_content)) == []
