"""Refresh runs through the runs trigger path and a real queue worker; rollback while one runs."""

from __future__ import annotations

import re
import threading

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from audit.models import Source
from entities.models import Mode, ParityReport
from entities.refresh import trigger_refresh
from kernel.errors import RequestError
from runs.models import Run, RunState
from tests.conftest import wait_until
from tests.entities.conftest import query
from tests.entities.helpers import move_to
from tests.runs.conftest import wait_final, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def cluster_log(cluster) -> str:
    return cluster.log_file.read_text()


def refresh(api_client, user, name: str = "users") -> Run:
    api_client.force_authenticate(user)
    response = api_client.post(f"/api/v1/entities/{name}/refresh/")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["kind"], body["params"], body["state"]) == ("entity-refresh", {"entity": name}, "queued")
    return Run.objects.get(pk=body["id"])


def test_refresh_in_shadow_runs_both_engines_and_writes_a_parity_report(
    queue_cluster, entity_types, warehouse, api_client, client, operator, approver
):
    move_to(entity_types["users"], operator, approver, "shadow")
    with psycopg.connect(warehouse) as conn:
        conn.execute("truncate rules_engine.users")

    run = wait_final(refresh(api_client, operator))

    assert run.state == RunState.SUCCESS, run.reason
    assert query(warehouse, "select count(*) from rules_engine.users")[0][0] == 106
    report = ParityReport.objects.get(run=run)
    assert (report.percent_display, report.matching_rows) == ("100.00", 106)
    assert run.node_results.filter(name="fct_users", status="success").exists()
    client.force_login(operator)
    page = client.get("/entities/users/").content.decode()
    assert f'<a href="/runs/{run.pk}/">#{run.pk}</a>' in page
    assert "100.00%" in page
    assert api_client.get("/api/v1/runs/").json()["results"][0]["id"] == run.pk


def test_refresh_in_rules_mode_runs_only_the_rules_engine_and_creates_the_view(
    queue_cluster, entity_types, warehouse, api_client, operator
):
    run = wait_final(refresh(api_client, operator, "applications"))
    assert run.state == RunState.SUCCESS, run.reason
    assert not run.node_results.exists()
    assert not ParityReport.objects.exists()
    assert query(warehouse, "select count(*) from serving.applications")[0][0] == 45


@pytest.fixture
def demo_start_warehouse(warehouse):
    """The warehouse as `make run` leaves it on a first start: raw.* seeded, nothing built
    (the session's staging/core schemas are set aside and put back afterwards)."""
    with psycopg.connect(warehouse) as conn:
        conn.execute("drop schema rules_engine cascade")
        conn.execute("alter schema staging rename to staging_set_aside")
        conn.execute("alter schema core rename to core_set_aside")
    try:
        yield warehouse
    finally:
        with psycopg.connect(warehouse) as conn:
            conn.execute("drop schema if exists staging cascade")
            conn.execute("drop schema if exists core cascade")
            conn.execute("alter schema staging_set_aside rename to staging")
            conn.execute("alter schema core_set_aside rename to core")


def test_from_a_fresh_demo_start_the_pages_say_refresh_and_refreshes_build_everything(
    queue_cluster, entity_types, demo_start_warehouse, api_client, client, operator, approver, viewer
):
    warehouse = demo_start_warehouse
    client.force_login(viewer)
    page = client.get("/entities/users/").content.decode()
    assert "serving.users does not exist yet: refresh users." in page
    assert "(an operator refreshes)" in page
    client.force_login(operator)
    listing = client.get("/entities/").content.decode()
    assert "serving.users does not exist yet: refresh users." in listing
    assert 'action="/entities/users/refresh/"' in listing
    response = client.post("/entities/users/refresh/", follow=True)
    assert re.search(r"Refresh of users queued as run #\d+", response.content.decode())

    run = wait_final(Run.objects.get())
    assert run.state == RunState.SUCCESS, run.reason
    assert query(warehouse, "select count(*) from serving.users")[0][0] == 106
    assert query(warehouse, "select to_regclass('core.fct_users')")[0][0] is None, "rules mode runs no dbt"
    page = client.get("/entities/users/").content.decode()
    assert "Next:</strong> Request shadow mode" in page

    move_to(entity_types["users"], operator, approver, "shadow")
    page = client.get("/entities/users/").content.decode()
    assert "Refresh users to run both engines and write the first parity report." in page
    run = wait_final(refresh(api_client, operator))
    assert run.state == RunState.SUCCESS, run.reason
    assert run.node_results.filter(name="fct_users", status="success").exists()
    report = ParityReport.objects.get(run=run)
    assert (report.percent_display, report.matching_rows) == ("100.00", 106)
    page = client.get("/entities/users/").content.decode()
    assert "Parity is 100.00% (threshold 100.00%): request canary" in page


def test_a_second_refresh_while_one_is_queued_is_refused(entity_types, api_client, operator):
    refresh(api_client, operator)
    response = api_client.post("/api/v1/entities/users/refresh/")
    assert response.status_code == 409
    assert "already queued" in response.json()["detail"]
    assert response.json()["code"] == "already_active"


def test_two_refresh_clicks_at_once_start_one_run(entity_types, operator):
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click() -> None:
        try:
            barrier.wait()
            trigger_refresh(entity_types["users"], actor=operator, source=Source.WEB)
            outcomes.append("queued")
        except RequestError as error:
            outcomes.append(error.message)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run = Run.objects.get()
    assert sorted(outcomes) == [f"A refresh of users is already queued (run #{run.pk}).", "queued"]


def test_rerunning_an_active_refresh_is_refused_like_a_second_refresh(entity_types, api_client, operator):
    run = refresh(api_client, operator)
    response = api_client.post(f"/api/v1/runs/{run.pk}/rerun/")
    assert response.status_code == 409 and response.json()["code"] == "already_active"
    assert f"already queued (run #{run.pk})" in response.json()["detail"]
    assert list(Run.objects.values_list("pk", flat=True)) == [run.pk]

    Run.objects.filter(pk=run.pk).update(state=RunState.FAILED, finished_at=timezone.now())
    response = api_client.post(f"/api/v1/runs/{run.pk}/rerun/")
    assert response.status_code == 202 and response.json()["params"] == {"entity": "users"}
    assert Run.objects.get(pk=response.json()["id"]).rerun_of_id == run.pk


@pytest.mark.parametrize("role", ["viewer", "approver"])
def test_only_operators_and_admins_may_refresh(request, entity_types, api_client, client, role):
    user = request.getfixturevalue(role)
    api_client.force_authenticate(user)
    assert api_client.post("/api/v1/entities/users/refresh/").status_code == 403
    client.force_login(user)
    assert client.post("/entities/users/refresh/").status_code == 403
    assert not Run.objects.exists()


def test_rollback_works_while_a_refresh_is_running(
    queue_cluster, entity_types, warehouse, api_client, operator, approver
):
    users = entity_types["users"]
    move_to(users, operator, approver, "shadow")
    move_to(users, operator, approver, "canary", 50)
    # Hold raw.users so the refresh's rules engine is stuck mid-run until we let go.
    blocker = psycopg.connect(warehouse)
    blocker.execute("lock table raw.users in access exclusive mode")
    try:
        run = refresh(api_client, operator)
        wait_for(
            run,
            lambda r: (
                r.state == RunState.RUNNING
                and query(
                    warehouse, "select count(*) from pg_locks where not granted and relation = 'raw.users'::regclass"
                )[0][0]
                > 0
            ),
        )
        response = api_client.post(
            "/api/v1/entities/users/rollback/", {"reason": "wrong owners in prod"}, format="json"
        )
        assert response.status_code == 200, response.json()
        run.refresh_from_db()
        assert run.state == RunState.RUNNING
        assert response.json()["mode"] == "rules"
        definition = query(warehouse, "select pg_get_viewdef('serving.users'::regclass, true)")[0][0]
        assert "users_dbt" not in definition
    finally:
        blocker.rollback()
        blocker.close()

    run = wait_final(run)
    assert run.state == RunState.SUCCESS, run.reason
    users.refresh_from_db()
    assert users.mode == Mode.RULES
    definition = query(warehouse, "select pg_get_viewdef('serving.users'::regclass, true)")[0][0]
    assert "users_dbt" not in definition, "the finished refresh must not undo the rollback"
    assert ParityReport.objects.filter(run=run).exists()

    # The queue worker sends the mail (its console mail backend writes it to its output).
    def rollback_mail() -> str | None:
        mails = re.findall(r"Subject: [^\n]*rolled back to rules by .*?\n-{20,}", cluster_log(queue_cluster), re.S)
        return next((mail for mail in mails if "wrong owners in prod" in mail), None)

    mail = wait_until(rollback_mail, "the rollback mail (with its reason) in the queue worker's output")
    assert approver.email in re.search(r"^To: (.*)$", mail, re.M).group(1)


def test_a_raw_row_the_rules_reject_fails_the_refresh_with_the_reason(
    queue_cluster, entity_types, warehouse, api_client, operator
):
    with psycopg.connect(warehouse) as conn:
        conn.execute("insert into raw.users (id, email) values ('12x', 'broken@example.com')")
    try:
        run = wait_final(refresh(api_client, operator))
    finally:
        with psycopg.connect(warehouse) as conn:
            conn.execute("delete from raw.users where id = '12x'")
    assert run.state == RunState.FAILED
    assert re.match(r"rules engine: rule set users: raw row [\d,]+ cannot be transformed", run.reason), run.reason
    assert "12x" in run.reason
    assert query(warehouse, "select count(*) from rules_engine.users")[0][0] == 106, "the live table is untouched"
