"""Run pages: what each role sees and may do; plain form posts; escaping."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from runs.models import NodeResult, Run, RunLogChunk, RunState

pytestmark = pytest.mark.django_db


def make_run(**fields) -> Run:
    defaults = {"project": "sleepy", "command": "build", "timeout_seconds": 60, "source": "web"}
    return Run.objects.create(**{**defaults, **fields})


def test_viewer_sees_a_running_run_without_cancel_or_rerun(client, viewer):
    run = make_run(state=RunState.RUNNING, started_at=timezone.now(), nodes_total=4, nodes_done=1)
    client.force_login(viewer)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Running" in page and "1 of 4 done" in page
    assert "Cancel run" not in page and "Re-run" not in page
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 403
    assert client.get("/runs/new/").status_code == 403


def test_operator_cancels_a_running_run_from_its_page(client, operator):
    run = make_run(state=RunState.RUNNING, started_at=timezone.now())
    client.force_login(operator)
    assert "Cancel run" in client.get(f"/runs/{run.pk}/").content.decode()
    assert client.post(f"/runs/{run.pk}/cancel/").status_code == 302
    run.refresh_from_db()
    assert run.cancel_requested_at is not None and run.reason == "cancel requested by otto_operator"
    assert "Cancel run" not in client.get(f"/runs/{run.pk}/").content.decode()


def test_rerun_of_a_finished_run_is_a_new_audited_run(client, operator, dbt_projects_dir):
    now = timezone.now()
    old = make_run(state=RunState.FAILED, select="fast", started_at=now, finished_at=now, reason="1 node(s) failed")
    client.force_login(operator)
    response = client.post(f"/runs/{old.pk}/rerun/")
    new = Run.objects.exclude(pk=old.pk).get()
    assert response.url == f"/runs/{new.pk}/"
    assert new.rerun_of == old and new.select == "fast" and new.state == RunState.QUEUED
    assert AuditEvent.objects.get(action="run.rerun").target_id == str(new.pk)
    assert f're-run of <a href="/runs/{old.pk}/">#{old.pk}</a>' in client.get(f"/runs/{new.pk}/").content.decode()


def test_parse_now_is_a_bare_form_post(client, operator, dbt_projects_dir):
    client.force_login(operator)
    response = client.post("/runs/new/", {"project": "inventory_transforms", "command": "parse"})
    run = Run.objects.get()
    assert response.status_code == 302 and response.url == f"/runs/{run.pk}/"
    assert run.command == "parse" and run.source == "web" and run.triggered_by.username == "otto_operator"


def test_bad_form_input_is_shown_next_to_the_field(client, operator, dbt_projects_dir):
    client.force_login(operator)
    response = client.post("/runs/new/", {"project": "sleepy", "command": "build", "vars": '{"nope": 1}'})
    assert response.status_code == 400
    assert "declares no var" in response.content.decode()
    response = client.post("/runs/new/", {"project": "sleepy", "command": "run-operation"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert not Run.objects.exists()


def test_list_filters_and_shows_who_and_state(client, viewer, operator):
    make_run(triggered_by=operator, state=RunState.SUCCESS, finished_at=timezone.now(), started_at=timezone.now())
    make_run(project="inventory_transforms", command="ls")
    client.force_login(viewer)
    page = client.get("/runs/?project=sleepy").content.decode()
    runs_table = page.split("runs-table")[1].split("</table>")[0]  # the Workers table follows it
    assert "otto_operator" in runs_table and "Success" in runs_table and "ls" not in runs_table
    assert "No runs match" in client.get("/runs/?state=timed_out").content.decode()


def test_user_text_is_escaped(client, viewer):
    run = make_run(state=RunState.FAILED, reason="<script>alert(1)</script>", finished_at=timezone.now())
    NodeResult.objects.create(run=run, unique_id="model.sleepy.x", name="<b>x</b>", status="error", message="<img>")
    RunLogChunk.objects.create(run=run, first_line=0, line_count=1, text="<script>log</script>")
    client.force_login(viewer)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page and "<img>" not in page
    assert client.get(f"/api/v1/runs/{run.pk}/log/").json()["lines"] == ["<script>log</script>"]


def test_admin_shows_runs_read_only(client, admin_user):
    run = make_run()
    client.force_login(admin_user)
    assert client.get("/admin/runs/run/").status_code == 200
    assert client.get(f"/admin/runs/run/{run.pk}/change/").status_code == 200
    assert client.get("/admin/runs/run/add/").status_code == 403
    assert client.post(f"/admin/runs/run/{run.pk}/delete/", {"post": "yes"}).status_code == 403


def test_workers_show_on_the_runs_page_and_the_api_for_viewers(client, api_client, viewer, nobody):
    from datetime import timedelta

    from runs.models import Worker

    now = timezone.now()
    Worker.objects.create(name="wk-up", hostname="host-1", pid=101, started_at=now, heartbeat_at=now)
    old = now - timedelta(hours=1)
    Worker.objects.create(name="wk-<gone>", hostname="host-2", pid=202, started_at=old, heartbeat_at=old)
    run = make_run(state=RunState.RUNNING, started_at=now, worker="wk-up", worker_pid=4321)
    client.force_login(viewer)
    page = client.get("/runs/").content.decode()
    assert "wk-up" in page and "host-1" in page and "alive" in page
    assert "wk-&lt;gone&gt;" in page and "not beating" in page
    assert "wk-up" in client.get(f"/runs/{run.pk}/").content.decode()
    assert "(pid 4321)" in client.get(f"/runs/{run.pk}/").content.decode()
    api_client.force_authenticate(viewer)
    listed = api_client.get("/api/v1/workers/").json()
    assert [(w["name"], w["alive"]) for w in listed] == [("wk-<gone>", False), ("wk-up", True)]
    assert api_client.get(f"/api/v1/runs/{run.pk}/").json()["worker_pid"] == 4321
    assert api_client.post("/api/v1/workers/").status_code == 405
    api_client.force_authenticate(nobody)
    assert api_client.get("/api/v1/workers/").status_code == 403
    assert set(Worker.objects.alive(within_seconds=60).values_list("name", flat=True)) == {"wk-up"}
