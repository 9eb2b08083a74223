"""dbt Cloud's Administrative API v2 (and v3's look-ups) as apache-airflow-providers-dbt-cloud
calls it: the envelope, pages by extra.pagination, filters, the refusals (each in the
envelope, each queueing nothing), roles, and a real worker's failed job run rerun from failure."""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import ApiToken
from audit.models import AuditEvent, Source
from dbt_cloud.shapes import project_id
from runs.artifacts import artifact_key, artifact_storage
from runs.jobs import create_job
from runs.models import Job, NodeResult, Run, RunArtifact, RunLogChunk, RunState, RunStep, StepState
from tests.conftest import wait_until

V2 = "/api/v2/accounts/1"
V3 = "/api/v3/accounts/1"


def client_for(user, scheme: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {ApiToken.issue(user, 'airflow', 1)[1]}")
    return client


@pytest.fixture
def as_operator(operator, dbt_projects_dir):
    return client_for(operator)


@pytest.fixture
def as_viewer(viewer, dbt_projects_dir):
    return client_for(viewer, "Bearer")


def make_job(project: str = "inventory_transforms", name: str = "nightly", **fields) -> Job:
    return create_job(actor="system", source=Source.SYSTEM, project=project, name=name, steps=["dbt build"], **fields)


def make_run(job: Job | None = None, state: str = RunState.SUCCESS, **fields) -> Run:
    return Run.objects.create(
        project=job.project if job else "inventory_transforms",
        job=job,
        environment=job.environment if job else None,
        command="" if job else "build",
        timeout_seconds=60,
        source=Source.API,
        state=state,
        **fields,
    )


def refused(response, status: int) -> dict:
    """The envelope of a refusal, checked."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"]["code"] == status and body["status"]["is_success"] is False
    assert body["status"]["user_message"]
    return body


# --- envelope, accounts, look-ups ----------------------------------------------------------
@pytest.mark.django_db
def test_accounts_in_the_envelope_and_any_other_account_is_404(as_viewer):
    body = as_viewer.get("/api/v2/accounts/").json()
    assert body["status"] == {"code": 200, "is_success": True, "user_message": "Success!", "developer_message": ""}
    assert [account["id"] for account in body["data"]] == [1]
    assert body["extra"]["pagination"] == {"count": 1, "total_count": 1}
    assert as_viewer.get(f"{V2}/").json()["data"]["id"] == 1
    for path in ("/api/v2/accounts/2/", "/api/v2/accounts/2/jobs/", "/api/v3/accounts/7/projects/"):
        assert "account" in refused(as_viewer.get(path), 404)["status"]["user_message"]
    refused(as_viewer.get(f"{V2}/no-such-endpoint/"), 404)


@pytest.mark.django_db
def test_the_provider_finds_a_job_by_project_environment_and_job_name(as_viewer):
    job = make_job()
    make_job(name="nightly extra")
    make_job(project="sleepy", name="nightly")
    projects = as_viewer.get(f"{V3}/projects/", {"name__icontains": "inventory"}).json()["data"]
    assert [(p["id"], p["name"]) for p in projects] == [(project_id("inventory_transforms"), "inventory_transforms")]
    project = projects[0]["id"]
    assert as_viewer.get(f"{V3}/projects/{project}/").json()["data"]["name"] == "inventory_transforms"
    environments = as_viewer.get(f"{V3}/projects/{project}/environments/", {"name__icontains": "dev"}).json()
    assert [(e["id"], e["name"]) for e in environments["data"]] == [(job.environment_id, "dev")]
    environment = as_viewer.get(f"{V3}/projects/{project}/environments/{job.environment_id}/").json()["data"]
    assert environment["credentials"]["target_name"] == "dev" and environment["project_id"] == project
    params = {"project_id": project, "environment_id": job.environment_id, "name__icontains": "nightly"}
    jobs = as_viewer.get(f"{V2}/jobs/", params).json()["data"]
    assert sorted(j["name"] for j in jobs) == ["nightly", "nightly extra"]
    assert [j["id"] for j in jobs if j["name"] == "nightly"] == [job.pk]
    refused(as_viewer.get(f"{V3}/projects/12345/"), 404)
    refused(as_viewer.get(f"{V3}/projects/{project}/environments/999999/"), 404)


@pytest.mark.django_db
def test_a_job_in_dbt_clouds_shape_with_or_without_the_trailing_slash(as_viewer):
    job = make_job(description="every night", cron="0 3 * * *", schedule_enabled=True, threads=2)
    for path in (f"{V2}/jobs/{job.pk}/", f"{V2}/jobs/{job.pk}"):
        data = as_viewer.get(path).json()["data"]
        assert data["id"] == job.pk and data["account_id"] == 1
        assert data["project_id"] == project_id("inventory_transforms")
        assert data["environment_id"] == job.environment_id
        assert data["execute_steps"] == ["dbt build"] and data["description"] == "every night"
        assert data["settings"] == {"threads": 2, "target_name": "dev"}
        assert data["triggers"]["schedule"] is True and data["schedule"]["cron"] == "0 3 * * *"
        assert data["state"] == 1 and data["next_run"]
    refused(as_viewer.get(f"{V2}/jobs/{job.pk + 1000}/"), 404)


@pytest.mark.django_db
def test_jobs_order_and_page(as_viewer, settings):
    settings.PORTAL_API_PAGE_SIZE = 2
    for name in ("b", "c", "a"):
        make_job(name=name)
    first = as_viewer.get(f"{V2}/jobs/", {"order_by": "-name"}).json()
    assert [j["name"] for j in first["data"]] == ["c", "b"]
    assert first["extra"]["filters"]["limit"] == 2 and first["extra"]["filters"]["offset"] == 0
    assert first["extra"]["pagination"] == {"count": 2, "total_count": 3}
    second = as_viewer.get(f"{V2}/jobs/", {"order_by": "-name", "offset": 2}).json()
    assert [j["name"] for j in second["data"]] == ["a"]
    assert second["extra"]["pagination"] == {"count": 1, "total_count": 3}
    refused(as_viewer.get(f"{V2}/jobs/", {"order_by": "steps"}), 400)
    refused(as_viewer.get(f"{V2}/jobs/", {"limit": 0}), 400)
    refused(as_viewer.get(f"{V2}/jobs/", {"project_id": "one"}), 400)
    refused(as_viewer.get(f"{V2}/jobs/", {"environment_id": "²"}), 400)
    refused(as_viewer.get(f"{V2}/jobs/", {"name__icontains": "a\x00"}), 400)


# --- runs ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_runs_filter_by_job_and_status_and_the_provider_walks_every_page(as_viewer, settings):
    settings.PORTAL_API_PAGE_SIZE = 2
    job, other = make_job(), make_job(name="other")
    states = [RunState.SUCCESS, RunState.FAILED, RunState.QUEUED, RunState.RUNNING, RunState.TIMED_OUT]
    runs = [make_run(job, state) for state in states]
    make_run(other)
    newest = as_viewer.get(f"{V2}/runs/", {"job_definition_id": job.pk}).json()["data"]
    assert [r["id"] for r in newest] == [runs[4].pk, runs[3].pk]  # dbt Cloud's default: most recent first
    by_id = as_viewer.get(f"{V2}/runs/", {"job_definition_id": job.pk, "order_by": "id"}).json()["data"]
    codes = [r["status"] for r in by_id]
    assert codes == [10, 20]  # first page, by id
    active = as_viewer.get(
        f"{V2}/runs/", {"job_definition_id": job.pk, "status__in": "[1, 2, 3]", "order_by": "-created_at"}
    ).json()
    assert [r["id"] for r in active["data"]] == [runs[3].pk, runs[2].pk]
    errors = as_viewer.get(f"{V2}/runs/", {"job_definition_id": job.pk, "status": 20, "order_by": "-id"}).json()
    assert [r["id"] for r in errors["data"]] == [runs[4].pk, runs[1].pk]
    seen, offset = [], 0  # the provider's _paginate: offsets by the page's limit until total_count
    while True:
        params = {"job_definition_id": job.pk, "order_by": "id", **({"offset": offset} if offset else {})}
        body = as_viewer.get(f"{V2}/runs/", params).json()
        seen += [r["id"] for r in body["data"]]
        if len(seen) >= body["extra"]["pagination"]["total_count"]:
            break
        offset += body["extra"]["filters"]["limit"]
    assert seen == [r.pk for r in runs]
    refused(as_viewer.get(f"{V2}/runs/", {"status": 4}), 400)
    refused(as_viewer.get(f"{V2}/runs/", {"status__in": "[1, x]"}), 400)
    refused(as_viewer.get(f"{V2}/runs/", {"include_related": "debug_logz"}), 400)


@pytest.mark.django_db
def test_a_full_page_of_runs_counts_them_bounded_then_whole(as_viewer, monkeypatch):
    """A full page needs a total: counted up to EXACT_COUNT_LIMIT runs, above that counted
    whole (under a statement timeout), never PostgreSQL's estimate (tests/dbt_cloud/test_paging.py)."""
    from runs import pagination

    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 5)
    for _ in range(12):
        make_run()
    with CaptureQueriesContext(connection) as queries:
        body = as_viewer.get(f"{V2}/runs/", {"limit": 2}).json()
    assert len(body["data"]) == 2
    assert body["extra"]["pagination"] == {"count": 2, "total_count": 12, "total_count_is_estimate": False}
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper() and "runs_run" in q["sql"]]
    assert len(counts) == 2 and "LIMIT 6" in counts[0] and "LIMIT" not in counts[1], counts
    small = as_viewer.get(f"{V2}/runs/", {"limit": 2, "status": 20}).json()["extra"]["pagination"]
    assert small == {"count": 0, "total_count": 0, "total_count_is_estimate": False}


@pytest.mark.django_db
def test_a_run_with_its_trigger_job_and_steps_and_their_logs(as_viewer):
    job = make_job()
    run = make_run(job, RunState.FAILED, cause="Triggered via Apache Airflow", reason="step 2 failed", log_lines=4)
    RunLogChunk.objects.create(run=run, first_line=0, line_count=4, text="seeding\nseeded\nbuilding\nboom")
    RunStep.objects.create(run=run, index=1, name="dbt seed", command="seed", state=StepState.SUCCESS,
                           log_first_line=0, log_end_line=2)  # fmt: skip
    RunStep.objects.create(run=run, index=2, name="dbt build", command="build", state=StepState.FAILED,
                           log_first_line=2, log_end_line=4)  # fmt: skip
    bare = as_viewer.get(f"{V2}/runs/{run.pk}/").json()["data"]
    assert bare["status"] == 20 and bare["status_humanized"] == "Error" and bare["status_message"] == "step 2 failed"
    assert bare["is_error"] and bare["is_complete"] and not bare["in_progress"] and not bare["is_success"]
    assert bare["job_definition_id"] == job.pk and bare["environment_id"] == job.environment_id
    assert bare["href"].endswith(f"/runs/{run.pk}/") and bare["run_steps"] == [] and bare["trigger"] is None
    for params in ({"include_related": ["job", "trigger", "run_steps"]}, {"include_related": "run_steps,job,trigger"},
                   {"include_related": '["job", "trigger", "run_steps"]'}):  # fmt: skip
        data = as_viewer.get(f"{V2}/runs/{run.pk}/", params).json()["data"]
        assert data["trigger"]["cause"] == "Triggered via Apache Airflow" and data["job"]["id"] == job.pk
        steps = [(s["index"], s["name"], s["status"], s["status_humanized"]) for s in data["run_steps"]]
        assert steps == [
            (1, "Clone git repository", 10, "Success"),
            (2, "Create profile from connection dev", 10, "Success"),
            (3, "Invoke dbt with `dbt seed`", 10, "Success"),
            (4, "Invoke dbt with `dbt build`", 20, "Error"),
        ]
        assert [s["logs"] for s in data["run_steps"][2:]] == ["seeding\nseeded", "building\nboom"]
        assert all(s["debug_logs"] == "" for s in data["run_steps"])
    for params in ({"include_related": "['run_steps', 'debug_logs']"}, {"include_related": "debug_logs"}):
        data = as_viewer.get(f"{V2}/runs/{run.pk}/", params).json()["data"]
        assert [s["debug_logs"] for s in data["run_steps"][2:]] == ["seeding\nseeded", "building\nboom"]
    every = '["repository", "used_repo_cache", "repo_cache_restore", "audit", "environment", "run_retries"]'
    data = as_viewer.get(f"{V2}/runs/{run.pk}/", {"include_related": every}).json()["data"]  # each documented name
    assert (data["repository"], data["used_repo_cache"], data["repo_cache_restore"]) == (None, None, None)
    assert data["environment"]["id"] == job.environment_id and data["run_retries"] == [] and data["audit"]
    refused(as_viewer.get(f"{V2}/runs/{run.pk + 1000}/"), 404)


@pytest.mark.django_db
def test_step_artifacts_are_listed_and_served_raw(as_viewer):
    run = make_run(make_job())
    for invocation, results in ((1, "seed"), (2, "build")):
        RunStep.objects.create(run=run, index=invocation, name=f"dbt {results}", command=results, invocation=invocation)
        for name, content in (("run_results.json", json.dumps({"step": results})), ("compiled/p/models/x.sql", "1")):
            key = artifact_storage().save(artifact_key(run.pk, invocation, name), ContentFile(content.encode()))
            RunArtifact.objects.create(run=run, invocation=invocation, name=name, key=key, size=len(content))
    listing = as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/").json()
    assert listing["data"] == ["compiled/p/models/x.sql", "run_results.json"]
    assert json.loads(as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/run_results.json").getvalue()) == {"step": "build"}
    step_one = as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/run_results.json", {"step": 3})  # after the setup steps
    assert json.loads(step_one.getvalue()) == {"step": "seed"}
    last = as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/run_results.json", {"step": 4})
    assert json.loads(last.getvalue()) == {"step": "build"}
    assert as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/", {"step": 3}).json()["data"] == listing["data"]
    setup = refused(as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/run_results.json", {"step": 1}), 404)
    assert "Clone git repository" in setup["status"]["user_message"]
    by_job = as_viewer.get(f"{V2}/jobs/{run.job_id}/artifacts/run_results.json")
    assert json.loads(by_job.getvalue()) == {"step": "build"}
    by_job_step = as_viewer.get(f"{V2}/jobs/{run.job_id}/artifacts/run_results.json", {"step": 3})
    assert json.loads(by_job_step.getvalue()) == {"step": "seed"}
    refused(as_viewer.get(f"{V2}/jobs/{run.job_id}/artifacts/manifest.json"), 404)
    assert as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/compiled/p/models/x.sql").getvalue() == b"1"
    refused(as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/manifest.json"), 404)
    refused(as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/run_results.json", {"step": 5}), 404)
    refused(as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/../../settings.py"), 404)
    refused(as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/compiled/%00.sql"), 400)
    refused(as_viewer.get(f"{V2}/runs/{run.pk}/artifacts/compiled.sql", {"node": "model.\x00"}), 400)


# --- trigger, refusals, roles --------------------------------------------------------------
@pytest.mark.django_db
def test_trigger_queues_a_run_with_status_1_and_audits_the_cause(
    as_operator, operator, queued, django_capture_on_commit_callbacks
):
    job = make_job()
    cause = "Triggered via Apache Airflow by task 'run' in the nightly DAG."
    body = {"cause": cause, "steps_override": None, "schema_override": "pr_7", "threads_override": 2}
    with django_capture_on_commit_callbacks(execute=True):
        response = as_operator.post(f"{V2}/jobs/{job.pk}/run/", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["status"] == 1 and data["status_humanized"] == "Queued" and data["in_progress"]
    run = Run.objects.get(pk=data["id"])
    assert (run.job, run.cause, run.source, run.threads, run.triggered_by) == (job, cause, Source.API, 2, operator)
    assert data["trigger"]["cause"] == cause and data["href"].endswith(f"/runs/{run.pk}/")
    event = AuditEvent.objects.get(action="run.trigger", target_id=str(run.pk))
    assert (event.reason, event.after["schema"], event.after["threads"]) == (cause, "pr_7", 2)  # where it writes
    assert queued() == ["runs.worker.execute_run"]
    assert as_operator.get(f"{V2}/runs/{run.pk}/").json()["data"]["status"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "cause"),
        ({"cause": None}, "cause"),
        ({"cause": 7}, "cause"),
        ({"cause": "x" * 256}, "cause"),
        ({"cause": "nul \x00"}, "cause"),
        ({"cause": "c", "git_sha": "abc123"}, "git_sha"),
        ({"cause": "c", "git_branch": "main"}, "git_branch"),
        ({"cause": "c", "dbt_version_override": "1.9"}, "dbt_version_override"),
        ({"cause": "c", "steps_override": "dbt build"}, "steps_override"),
        ({"cause": "c", "steps_override": [1]}, "steps_override"),
        ({"cause": "c", "steps_override": ["dbt run-operation drop_all"]}, "steps_override"),
        ({"cause": "c", "threads_override": "4"}, "threads_override"),
        ({"cause": "c", "threads_override": True}, "threads_override"),
        ({"cause": "c", "threads_override": 1000}, "threads_override"),
        ({"cause": "c", "generate_docs_override": "yes"}, "generate_docs_override"),
        ({"cause": "c", "timeout_seconds_override": 1.5}, "timeout_seconds_override"),
        ({"cause": "c", "target_name_override": ["prod"]}, "target_name_override"),
        ({"cause": "c", "schema_override": "a; drop"}, "schema_override"),
        ({"cause": "c", "schema_override": "RAW"}, "schema_override"),
        ({"cause": "c", "schema_override": "rules_engine"}, "schema_override"),
        ({"cause": "c", "schema_override": "s" * 64}, "schema_override"),
        (["cause"], None),
    ],
)
def test_every_bad_trigger_is_a_400_envelope_naming_the_field_and_queues_nothing(as_operator, queued, body, field):
    job = make_job()
    answer = refused(as_operator.post(f"{V2}/jobs/{job.pk}/run/", body, format="json"), 400)
    assert answer["data"]["field"] == field
    assert answer["status"]["developer_message"] == (f"field: {field}" if field else "invalid")
    assert Run.objects.count() == 0 and queued() == []
    assert not AuditEvent.objects.filter(action="run.trigger").exists()


def test_a_steps_override_with_jinja_in_its_vars_is_refused(as_operator, queued):
    """dbt renders a var's text as Jinja (run_query, env_var): a step may not smuggle code in."""
    job = make_job(project="sleepy")
    step = """dbt run -s slow --vars '{"sleep_seconds": "{{ run_query(\\"drop schema raw cascade\\") }}0"}'"""
    answer = refused(
        as_operator.post(f"{V2}/jobs/{job.pk}/run/", {"cause": "c", "steps_override": [step]}, format="json"), 400
    )
    assert answer["data"]["field"] == "steps_override" and "Jinja" in answer["status"]["user_message"]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_malformed_json_and_unknown_objects_queue_nothing(as_operator, queued):
    job = make_job()
    bad_json = as_operator.post(f"{V2}/jobs/{job.pk}/run/", "{cause", content_type="application/json")
    refused(bad_json, 400)
    refused(as_operator.post(f"{V2}/jobs/{job.pk + 1000}/run/", {"cause": "c"}, format="json"), 404)
    refused(as_operator.post(f"/api/v2/accounts/2/jobs/{job.pk}/run/", {"cause": "c"}, format="json"), 404)
    refused(as_operator.post(f"{V2}/jobs/{10**17}/rerun/"), 404)
    refused(as_operator.post(f"{V2}/runs/{10**17}/cancel/"), 404)
    assert Run.objects.count() == 0 and queued() == []


@pytest.mark.django_db
def test_roles_and_tokens(as_viewer, as_operator, nobody, dbt_projects_dir, queued):
    job = make_job()
    assert as_viewer.get(f"{V2}/jobs/").status_code == 200  # Bearer works as Token does
    refused(as_viewer.post(f"{V2}/jobs/{job.pk}/run/", {"cause": "c"}, format="json"), 403)
    refused(as_viewer.post(f"{V2}/jobs/{job.pk}/rerun/"), 403)
    refused(client_for(nobody).get(f"{V2}/jobs/"), 403)
    anonymous = refused(APIClient().get(f"{V2}/runs/"), 401)
    assert anonymous["data"]["code"] == "not_authenticated"
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Token tp_not-a-token")
    refused(wrong.post(f"{V2}/jobs/{job.pk}/run/", {"cause": "c"}, format="json"), 401)
    assert Run.objects.count() == 0 and queued() == []


@pytest.mark.django_db
def test_cancel_a_queued_run_and_answer_a_finished_one_as_it_is(as_operator):
    job = make_job()
    waiting, done = make_run(job, RunState.QUEUED), make_run(job, RunState.SUCCESS)
    response = as_operator.post(f"{V2}/runs/{waiting.pk}/cancel/", content_type="application/json")
    assert response.status_code == 200 and response.json()["data"]["status"] == 30
    assert response.json()["data"]["is_cancelled"]
    waiting.refresh_from_db()
    assert waiting.state == RunState.CANCELLED
    assert AuditEvent.objects.filter(action="run.cancel", target_id=str(waiting.pk), source=Source.API).exists()
    finished = as_operator.post(f"{V2}/runs/{done.pk}/cancel", content_type="application/json")
    assert finished.status_code == 200 and finished.json()["status"]["is_success"]
    assert finished.json()["data"]["status"] == 10
    assert not AuditEvent.objects.filter(action="run.cancel", target_id=str(done.pk)).exists()
    running = make_run(job, RunState.RUNNING)
    going = as_operator.post(f"{V2}/runs/{running.pk}/cancel/", content_type="application/json").json()["data"]
    assert (going["status"], going["status_humanized"]) == (30, "Cancelled")  # where it is going
    running.refresh_from_db()
    assert running.cancel_requested_at is not None


# --- a real worker -------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_failed_job_run_is_rerun_from_failure_through_v2(queue_cluster, operator, dbt_projects_dir):
    """The job's run fails on `fragile` (`after_fragile` skipped, `steady` fine); POST rerun
    runs only those two again, as `dbt retry` would."""
    client = client_for(operator)
    job = create_job(actor=operator, source=Source.API, project="retryable", name="retry me", steps=["dbt run"])
    first = client.post(f"{V2}/jobs/{job.pk}/run/", {"cause": "first"}, format="json").json()["data"]["id"]

    def final(run_id: int) -> dict:
        data = client.get(f"{V2}/runs/{run_id}/", {"include_related": "run_steps"}).json()["data"]
        return data if data["is_complete"] else None

    failed = wait_until(lambda: final(first), f"run #{first} to finish")
    assert failed["status"] == 20 and failed["run_steps"][2]["status"] == 20
    assert failed["run_steps"][2]["name"] == "Invoke dbt with `dbt run`"
    assert "fragile" in failed["run_steps"][2]["logs"]
    results = json.loads(client.get(f"{V2}/runs/{first}/artifacts/run_results.json", {"step": 3}).getvalue())
    statuses = {r["unique_id"].split(".")[-1]: r["status"] for r in results["results"]}
    assert statuses == {"steady": "success", "fragile": "error", "after_fragile": "skipped"}
    cloud = {name: value for name, value in results["metadata"]["env"].items() if name.startswith("DBT_CLOUD_")}
    assert cloud == {
        "DBT_CLOUD_ACCOUNT_ID": "1",
        "DBT_CLOUD_PROJECT_ID": str(project_id("retryable")),
        "DBT_CLOUD_ENVIRONMENT_ID": str(job.environment_id),
        "DBT_CLOUD_JOB_ID": str(job.pk),
        "DBT_CLOUD_RUN_ID": str(first),
        "DBT_CLOUD_RUN_REASON": "first",
        "DBT_CLOUD_RUN_REASON_CATEGORY": "api",
    }

    rerun = client.post(f"{V2}/jobs/{job.pk}/rerun/", content_type="application/json").json()["data"]
    assert rerun["status"] == 1 and rerun["retry_of_run_id"] == first
    wait_until(lambda: final(rerun["id"]), f"run #{rerun['id']} to finish")
    ran = set(NodeResult.objects.filter(run_id=rerun["id"]).values_list("name", flat=True))
    assert ran == {"fragile", "after_fragile"}
