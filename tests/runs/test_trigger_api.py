"""Triggering through the API: every rejected input is a 400 naming the field, and no run
(and so no process) exists afterwards; roles decide who may trigger."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from runs.models import NodeResult, Run, RunState

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture
def as_operator(api_client, operator, dbt_projects_dir):
    api_client.force_authenticate(operator)
    return api_client


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"project": "nope", "command": "build"}, "project", "no dbt project 'nope'"),
        ({"project": "../dbt_projects", "command": "build"}, "project", "no dbt project"),
        ({"project": "inventory_transforms", "command": "run-operation"}, "command", "not an allowed dbt command"),
        ({"project": "inventory_transforms", "command": "show"}, "command", "not an allowed dbt command"),
        ({"project": "inventory_transforms", "select": "--profiles-dir=/tmp"}, "select", "starts with '-'"),
        ({"project": "inventory_transforms", "select": "fct_users;id"}, "select", "';'"),
        ({"project": "inventory_transforms", "exclude": "stg_users\x1b[31m"}, "exclude", "control character"),
        ({"project": "inventory_transforms", "select": "$(id)"}, "select", "'$'"),
        ({"project": "inventory_transforms", "select": "fct_userz"}, "select", "'fct_userz' matches no node"),
        ({"project": "inventory_transforms", "select": "tag:no_such_tag"}, "select", "matches no node"),
        ({"project": "inventory_transforms", "vars": {"anything": 1}}, "vars", "declares no var 'anything'"),
        ({"project": "sleepy", "vars": {"sleep_seconds": 1, "other": 2}}, "vars", "declares no var 'other'"),
        ({"project": "sleepy", "vars": [1]}, "vars", "JSON object"),
        ({"project": "sleepy", "vars": {"sleep_seconds": "{{ run_query('drop table x') }}0"}}, "vars", "Jinja"),
        ({"project": "sleepy", "vars": {"sleep_seconds": ["{% do log(env_var('SECRET_KEY')) %}"]}}, "vars", "Jinja"),
        ({"project": "inventory_transforms", "timeout_seconds": 10**9}, "timeout_seconds", "between 1 and"),
        ({"project": "inventory_transforms", "timeout_seconds": 0}, "timeout_seconds", "between 1 and"),
    ],
)
def test_rejected_input_is_400_naming_the_problem_and_nothing_starts(as_operator, queued, body, field, words):
    response = as_operator.post("/api/v1/runs/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert words in response.json()["detail"]
    assert Run.objects.count() == 0
    assert queued() == []
    assert not AuditEvent.objects.filter(action="run.trigger").exists()


def test_trigger_is_202_queued_and_audited(as_operator, operator, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_operator.post(
            "/api/v1/runs/",
            {"project": "sleepy", "command": "build", "select": "fast", "vars": {"sleep_seconds": 2}},
            format="json",
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == RunState.QUEUED and body["triggered_by"] == operator.username
    assert body["vars"] == {"sleep_seconds": 2} and body["source"] == "api"
    assert queued() == ["runs.worker.execute_run"]
    event = AuditEvent.objects.get(action="run.trigger")
    assert event.target_id == str(body["id"]) and event.source == "api"
    assert as_operator.get(f"/api/v1/runs/{body['id']}/").json()["title"] == "build --select fast"


def test_viewer_reads_but_may_not_trigger_or_cancel(api_client, viewer, operator, dbt_projects_dir):
    api_client.force_authenticate(viewer)
    assert api_client.post("/api/v1/runs/", {"project": "sleepy"}, format="json").status_code == 403
    run = Run.objects.create(project="sleepy", command="build", timeout_seconds=60, source="api", triggered_by=operator)
    assert api_client.get("/api/v1/runs/").json()["count"] == 1
    assert api_client.post(f"/api/v1/runs/{run.pk}/cancel/").status_code == 403
    assert api_client.post("/api/v1/projects/sleepy/parse/").status_code == 403
    api_client.force_authenticate(None)
    assert api_client.get("/api/v1/runs/").status_code in (401, 403)


def test_cancel_of_a_queued_run_ends_it_at_once_and_twice_is_409(as_operator, operator):
    run = Run.objects.create(project="sleepy", command="build", timeout_seconds=60, source="api", triggered_by=operator)
    response = as_operator.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert response.status_code == 202
    assert response.json()["state"] == RunState.CANCELLED
    assert "cancelled by otto_operator before it started" in response.json()["reason"]
    again = as_operator.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert (again.json()["code"], again.json()["field"]) == ("already_finished", "state")
    assert AuditEvent.objects.filter(action="run.cancel", target_id=str(run.pk)).count() == 1


def test_parse_endpoint_queues_a_parse_run(as_operator):
    response = as_operator.post("/api/v1/projects/inventory_transforms/parse/")
    assert response.status_code == 202
    assert response.json()["command"] == "parse"
    assert as_operator.post("/api/v1/projects/missing/parse/").status_code == 404


def test_list_filters(as_operator, operator, viewer):
    Run.objects.create(project="sleepy", command="build", timeout_seconds=60, source="api", triggered_by=operator)
    Run.objects.create(
        project="inventory_transforms", command="ls", timeout_seconds=60, source="web", state=RunState.RUNNING
    )
    assert as_operator.get("/api/v1/runs/?project=sleepy").json()["count"] == 1
    assert as_operator.get("/api/v1/runs/?state=running").json()["results"][0]["command"] == "ls"
    assert as_operator.get("/api/v1/runs/?who=otto_operator").json()["count"] == 1
    assert as_operator.get("/api/v1/runs/?state=bogus").status_code == 400


def test_artifacts_are_served_by_allowlisted_name_only(as_operator, operator):
    from django.core.files.base import ContentFile

    from runs.artifacts import artifact_storage
    from runs.models import RunArtifact

    run = Run.objects.create(project="sleepy", command="build", timeout_seconds=60, source="api")
    for name, body in (("manifest.json", b'{"ok": true}'), ("secret.txt", b"no")):
        key = artifact_storage().save(f"runs/{run.pk}/1/{name}", ContentFile(body))
        RunArtifact.objects.create(run=run, invocation=1, name=name, key=key, size=len(body))
    response = as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/manifest.json")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b'{"ok": true}'
    assert response["Content-Type"] == "application/json" and response["Content-Length"] == "12"
    assert as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/secret.txt").status_code == 404
    assert as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/..%2Fsecret.txt").status_code == 404
    assert as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/compiled.sql?node=../../x").status_code == 404
    assert as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/run_results.json").status_code == 404


def test_a_run_from_before_the_artifact_storage_serves_its_local_files_but_no_symlink(as_operator, operator, tmp_path):
    """Runs that ended before artifacts went to the storage have no index rows: their files
    are served from the target path on the host that ran them, within it only."""
    target = tmp_path / "target"
    (target / "compiled").mkdir(parents=True)
    (target / "manifest.json").write_text('{"legacy": true}')
    (target / "compiled" / "m.sql").write_text("select 1")
    (tmp_path / "secret").write_text("SECRET_KEY=x")
    (target / "run_results.json").symlink_to(tmp_path / "secret")
    run = Run.objects.create(
        project="sleepy", command="build", timeout_seconds=60, source="api", target_path=str(target)
    )
    NodeResult.objects.create(run=run, unique_id="model.sleepy.m", compiled_path="compiled/m.sql")
    NodeResult.objects.create(run=run, unique_id="model.sleepy.out", compiled_path="../secret")

    response = as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/manifest.json")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b'{"legacy": true}'
    compiled = as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/compiled.sql?node=model.sleepy.m")
    assert b"".join(compiled.streaming_content) == b"select 1"
    assert as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/run_results.json").status_code == 404
    assert as_operator.get(f"/api/v1/runs/{run.pk}/artifacts/compiled.sql?node=model.sleepy.out").status_code == 404
    as_operator.force_login(operator)
    page = as_operator.get(f"/runs/{run.pk}/").content.decode()
    assert (
        f"/runs/{run.pk}/artifacts/manifest.json" in page and f"/runs/{run.pk}/artifacts/run_results.json" not in page
    )


def test_a_rolled_back_trigger_leaves_neither_run_nor_task(operator, dbt_projects_dir, queued):
    from django.db import transaction

    from runs.services import trigger_run

    with pytest.raises(RuntimeError), transaction.atomic():
        trigger_run(project="sleepy", command="ls", actor=operator, source="api")
        raise RuntimeError("the caller's transaction fails after the trigger")
    assert not Run.objects.exists() and queued() == []


def test_run_body_is_exactly_the_declared_fields(as_operator, operator):
    """RunSerializer writes its fields by hand (list speed); the body must stay what DRF's
    own field handling makes of the same run."""
    import json

    from django.utils import timezone
    from rest_framework import serializers
    from rest_framework.renderers import JSONRenderer

    from runs.serializers import RunSerializer

    first = Run.objects.create(project="sleepy", command="build", timeout_seconds=60, source="api")
    now = timezone.now()
    run = Run.objects.create(
        project="sleepy",
        command="run",
        select="fast",
        vars={"sleep_seconds": 1},
        timeout_seconds=60,
        source="web",
        triggered_by=operator,
        rerun_of=first,
        state=RunState.FAILED,
        reason="1 node(s) failed",
        started_at=now,
        finished_at=now,
        heartbeat_at=now,
        exit_code=1,
        nodes_total=2,
        nodes_done=2,
        nodes_failed=1,
    )
    expected = json.loads(JSONRenderer().render(serializers.ModelSerializer.to_representation(RunSerializer(), run)))
    assert as_operator.get(f"/api/v1/runs/{run.pk}/").json() == expected
    assert as_operator.get("/api/v1/runs/").json()["results"][0] == expected
    assert expected["triggered_by"] == "otto_operator" and expected["rerun_of"] == first.pk
    assert expected["finished_at"].endswith("Z") and expected["title"] == "run --select fast"


def test_large_lists_estimate_the_count_but_page_through_every_run(as_operator, monkeypatch):
    from runs import pagination

    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 5)
    monkeypatch.setattr(pagination.RunPagination, "page_size", 5)
    runs = [Run.objects.create(project="sleepy", command="ls", timeout_seconds=60, source="api") for _ in range(12)]
    first = as_operator.get("/api/v1/runs/").json()
    assert first["count_is_estimate"] is True and first["count"] >= 6
    seen, url = [], "/api/v1/runs/"
    while url:
        body = as_operator.get(url).json()
        seen += [run["id"] for run in body["results"]]
        url = body["next"]
    assert seen == [run.pk for run in reversed(runs)]
    assert as_operator.get("/api/v1/runs/?page=4").status_code == 404
    small = as_operator.get("/api/v1/runs/?project=sleepy&command=build").json()
    assert small == {"count": 0, "next": None, "previous": None, "results": [], "count_is_estimate": False}


def test_every_api_error_is_detail_field_and_code(as_operator, api_client, viewer):
    def error(response) -> tuple:
        body = response.json()
        return response.status_code, body["field"], body["code"], bool(body["detail"])

    refused = as_operator.post("/api/v1/runs/", {"project": "sleepy", "timeout_seconds": 0}, format="json")
    assert error(refused) == (400, "timeout_seconds", "invalid", True)
    refused = as_operator.post("/api/v1/runs/", {"project": "sleepy", "select": "$(id)"}, format="json")
    assert error(refused) == (400, "select", "invalid_selector", True)
    assert error(as_operator.post("/api/v1/runs/", {}, format="json")) == (400, "project", "required", True)
    assert error(as_operator.get("/api/v1/runs/?source=ui")) == (400, "source", "invalid_choice", True)
    assert error(as_operator.get("/api/v1/runs/999999/")) == (404, None, "not_found", True)
    assert error(as_operator.delete("/api/v1/runs/")) == (405, None, "method_not_allowed", True)
    api_client.force_authenticate(viewer)
    assert error(api_client.post("/api/v1/runs/", {"project": "sleepy"}, format="json")) == (
        403,
        None,
        "permission_denied",
        True,
    )
    api_client.force_authenticate(None)
    assert error(api_client.get("/api/v1/runs/"))[1:] == (None, "not_authenticated", True)
    assert Run.objects.count() == 0


def test_runs_are_filtered_by_the_door_they_came_through(as_operator):
    for source in ("web", "api", "schedule", "command"):
        Run.objects.create(project="sleepy", command="ls", timeout_seconds=60, source=source)
    response = as_operator.get("/api/v1/runs/?source=web")
    assert [run["source"] for run in response.json()["results"]] == ["web"]
    assert as_operator.get("/api/v1/runs/?source=command").json()["count"] == 1
