"""Run pages: what each role sees and may do; plain form posts; escaping."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from runs.models import NodeResult, Run, RunLogChunk, RunState
from tests.conftest import SESSION_WORKER_NAME

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
    # not the session's queue cluster, which beats into this database when a test before this one started it
    listed = [w for w in api_client.get("/api/v1/workers/").json() if w["name"] != SESSION_WORKER_NAME]
    assert [(w["name"], w["alive"]) for w in listed] == [("wk-<gone>", False), ("wk-up", True)]
    assert api_client.get(f"/api/v1/runs/{run.pk}/").json()["worker_pid"] == 4321
    assert api_client.post("/api/v1/workers/").status_code == 405
    api_client.force_authenticate(nobody)
    assert api_client.get("/api/v1/workers/").status_code == 403
    alive = Worker.objects.alive(within_seconds=60).exclude(name=SESSION_WORKER_NAME)
    assert set(alive.values_list("name", flat=True)) == {"wk-up"}


def stored_artifact(run: Run, name: str, content: bytes) -> None:
    """A file the worker stored for the run's first dbt invocation, with its index row."""
    from django.core.files.base import ContentFile

    from runs.artifacts import artifact_key, artifact_storage
    from runs.models import RunArtifact

    key = artifact_storage().save(artifact_key(run.pk, 1, name), ContentFile(content, name=name))
    RunArtifact.objects.create(run=run, invocation=1, name=name, key=key, size=len(content))


def finished_run_with_model(compiled: bytes) -> Run:
    run = make_run(state=RunState.SUCCESS, finished_at=timezone.now())
    path = "compiled/sleepy/models/fast.sql"
    NodeResult.objects.create(run=run, unique_id="model.sleepy.fast", name="fast", status="success", compiled_path=path)
    stored_artifact(run, path, compiled)
    return run


def test_compiled_sql_and_json_artifacts_open_in_a_page_with_their_download(client, viewer):
    run = finished_run_with_model(b"select id, 'a' as name\nfrom raw.customers -- kept\n")
    stored_artifact(run, "run_results.json", b'{"results": [{"unique_id": "model.sleepy.fast", "status": "success"}]}')
    client.force_login(viewer)
    detail = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/artifacts/run_results.json/view/"' in detail
    assert f'href="/runs/{run.pk}/artifacts/run_results.json"' in detail  # the download stays
    assert f'href="/runs/{run.pk}/artifacts/compiled.sql/view/?node=model.sleepy.fast"' in detail

    response = client.get(f"/runs/{run.pk}/artifacts/compiled.sql/view/?node=model.sleepy.fast")
    assert response.status_code == 200
    page = response.content.decode()
    assert "fast.sql" in page and "model.sleepy.fast" in page
    code = page.split('data-testid="artifact-content"')[1].split("</pre>")[0]
    assert '<span class="k">select</span>' in code and "raw" in code and "-- kept" in code
    assert f'href="/runs/{run.pk}/artifacts/compiled.sql?node=model.sleepy.fast"' in page

    page = client.get(f"/runs/{run.pk}/artifacts/run_results.json/view/").content.decode()
    code = page.split('data-testid="artifact-content"')[1].split("</pre>")[0]
    assert '\n<span class="w">  </span><span class="nt">"results"</span>' in code  # pretty-printed, 2 spaces a level
    assert '<span class="s2">"model.sleepy.fast"</span>' in code
    assert f'href="/runs/{run.pk}/artifacts/run_results.json"' in page


def test_a_hostile_artifact_is_shown_escaped(client, viewer):
    run = finished_run_with_model(b"select '</script><script>alert(1)</script>' as x\n")
    stored_artifact(run, "dbt.log", b"<img src=x onerror=alert(2)>\n")
    client.force_login(viewer)
    page = client.get(f"/runs/{run.pk}/artifacts/compiled.sql/view/?node=model.sleepy.fast").content.decode()
    assert "<script>alert(1)" not in page and "</script><script>" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    page = client.get(f"/runs/{run.pk}/artifacts/dbt.log/view/").content.decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page


def test_binary_and_large_artifacts_offer_only_their_download(client, viewer):
    from runs.artifacts import ARTIFACT_PAGE_MAX_BYTES

    run = finished_run_with_model(b"select 1\x00\xff\xfe as x\n")
    stored_artifact(run, "manifest.json", b'{"nodes": {}, "pad": "' + b"x" * ARTIFACT_PAGE_MAX_BYTES + b'"}')
    client.force_login(viewer)
    pages = {"compiled.sql/view/?node=model.sleepy.fast": "not text", "manifest.json/view/": "too large"}
    for path, shown in pages.items():
        response = client.get(f"/runs/{run.pk}/artifacts/{path}")
        page = response.content.decode()
        assert response.status_code == 200 and shown in page, page
        assert 'data-testid="artifact-content"' not in page and "Download" in page


def test_artifact_pages_need_the_download_permission_and_a_known_name(client, viewer, nobody):
    run = finished_run_with_model(b"select 1\n")
    client.force_login(nobody)
    assert client.get(f"/runs/{run.pk}/artifacts/compiled.sql/view/?node=model.sleepy.fast").status_code == 403
    client.force_login(viewer)
    assert client.get(f"/runs/{run.pk}/artifacts/profiles.yml/view/").status_code == 404
    assert client.get(f"/runs/{run.pk}/artifacts/catalog.json/view/").status_code == 404
    assert client.get(f"/runs/{run.pk}/artifacts/compiled.sql/view/?node=model.sleepy.nope").status_code == 404
