"""What dbt Cloud clients other than Airflow's send (issue 19): dbt-cloud-cli's whole trigger
model, job create/update/delete as dbt-cloud-cli and dagster-dbt send them, the look-ups they
call, and every list filter honoured or refused by name. In process; the clients themselves
drive a real portal in test_dbt_cloud_cli.py and test_dagster.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent, Source
from dbt_cloud import api
from dbt_cloud.shapes import dbt_version, project_id
from runs.environments import default_environment
from runs.models import Environment, Job, Run, RunState
from tests.dbt_cloud.test_dbt_cloud_api import V2, V3, client_for, make_job, make_run, refused

INVENTORY = project_id("inventory_transforms")


@pytest.fixture
def as_operator(operator, dbt_projects_dir):
    return client_for(operator)


@pytest.fixture
def as_viewer(viewer, dbt_projects_dir):
    return client_for(viewer)


def cli_trigger(job: Job, **fields) -> dict:
    """dbt-cloud-cli 0.9.1's `job run` body: its whole request model, nulls included."""
    body = {
        "account_id": 1, "job_id": job.pk, "cause": "Triggered via API", "git_sha": None, "git_branch": None,
        "azure_pull_request_id": None, "github_pull_request_id": None, "gitlab_merge_request_id": None,
        "schema_override": None, "dbt_version_override": None, "threads_override": None,
        "target_name_override": None, "generate_docs_override": None, "timeout_seconds_override": None,
        "steps_override": None,
    }  # fmt: skip
    return {**body, **fields}


# --- trigger ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_clis_whole_trigger_model_queues_a_run(as_operator, queued):
    job = make_job()
    response = as_operator.post(f"{V2}/jobs/{job.pk}/run/", cli_trigger(job), format="json")
    assert response.status_code == 200, response.content
    run = Run.objects.get(pk=response.json()["data"]["id"])
    assert (run.job, run.cause) == (job, "Triggered via API")
    overrides = cli_trigger(
        job, steps_override=[], dbt_version_override=dbt_version(), generate_docs_override=False, threads_override=3
    )
    again = as_operator.post(f"{V2}/jobs/{job.pk}/run", overrides, format="json")  # no trailing slash
    assert again.status_code == 200, again.content
    run = Run.objects.get(pk=again.json()["data"]["id"])
    assert [step.name for step in run.steps.order_by("index")] == ["dbt build"]  # [] is the job's own steps
    assert run.threads == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field",
    [
        ({"account_id": 2}, "account_id"),
        ({"job_id": 0}, "job_id"),
        ({"job_id": "x"}, "job_id"),
        ({"github_pull_request_id": 12}, "git_sha"),  # a pull request's run needs its head commit
        ({"gitlab_merge_request_id": 12}, "git_sha"),
        ({"azure_pull_request_id": 12}, "git_sha"),
        ({"non_native_pull_request_id": 12}, "git_sha"),
        ({"github_pull_request_id": 12, "gitlab_merge_request_id": 12, "git_sha": "a" * 40}, "gitlab_merge_request_id"),
        ({"github_pull_request_id": True, "git_sha": "a" * 40}, "github_pull_request_id"),
        ({"git_sha": "abc"}, "git_sha"),  # a folder project has no commits
        ({"git_branch": "main"}, "git_branch"),
        ({"dbt_version_override": "1.5.0"}, "dbt_version_override"),
        ({"generate_sources_override": True}, "generate_sources_override"),
    ],
)
def test_a_trigger_field_the_portal_cannot_honour_is_refused_by_name(as_operator, queued, fields, field):
    job = make_job()
    answer = refused(as_operator.post(f"{V2}/jobs/{job.pk}/run/", cli_trigger(job, **fields), format="json"), 400)
    assert answer["data"]["field"] == field and field in answer["status"]["user_message"]
    assert not Run.objects.exists() and queued() == []


# --- jobs: create, update, delete --------------------------------------------------------------
def dagster_job(environment: Environment) -> dict:
    """dagster-dbt's ad hoc job (DbtCloudWorkspaceClient.create_job)."""
    return {
        "account_id": 1, "environment_id": environment.pk, "project_id": INVENTORY,
        "name": f"DAGSTER_ADHOC_JOB__{INVENTORY}__{environment.pk}",
        "description": "A job that runs dbt models, sources, and tests.", "job_type": "other",
    }  # fmt: skip


def cli_job(environment: Environment, **fields) -> dict:
    """dbt-cloud-cli 0.9.1's `job create` body, defaults included."""
    body = {
        "id": None, "account_id": 1, "project_id": INVENTORY, "environment_id": environment.pk, "name": "nightly",
        "execute_steps": ["dbt seed", "dbt run"], "dbt_version": None, "description": "", "job_type": None,
        "triggers": {"github_webhook": False, "schedule": False, "custom_branch_only": False,
                     "git_provider_webhook": False, "on_merge": False},
        "settings": {"threads": 1, "target_name": "default"}, "execution": {"timeout_seconds": 0}, "state": 1,
        "generate_docs": False,
        "schedule": {"cron": "0 * * * *", "date": {"type": "every_day"}, "time": {"type": "every_hour", "interval": 1}},
        "deferring_job_definition_id": None, "deferring_environment_id": None, "run_generate_sources": False,
        "run_compare_changes": False, "run_lint": False, "errors_on_lint_failure": False,
        "lifecycle_webhooks": False, "triggers_on_draft_pr": False,
    }  # fmt: skip
    return {**body, **fields}


@pytest.mark.django_db
def test_dagsters_ad_hoc_job_is_created_and_triggered_with_its_steps(as_operator, operator, queued):
    environment = default_environment("inventory_transforms")
    response = as_operator.post(f"{V2}/jobs", dagster_job(environment), format="json")
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    job = Job.objects.get(pk=data["id"])
    assert (job.name, job.environment, job.steps) == (dagster_job(environment)["name"], environment, ["dbt build"])
    assert (data["project_id"], data["environment_id"], data["job_type"]) == (INVENTORY, environment.pk, "other")
    event = AuditEvent.objects.get(action="job.create", target_id=str(job.pk))
    assert (event.source, event.actor) == (Source.API, operator)
    body = {"steps_override": ["dbt parse"], "cause": "Triggered by dagster."}
    run = as_operator.post(f"{V2}/jobs/{job.pk}/run", body, format="json").json()["data"]
    assert [step.name for step in Run.objects.get(pk=run["id"]).steps.all()] == ["dbt parse"]


@pytest.mark.django_db
def test_the_clis_job_is_created_updated_and_deleted(as_operator, as_viewer):
    environment = default_environment("inventory_transforms")
    created = as_operator.post(f"{V2}/jobs/", cli_job(environment), format="json")
    assert created.status_code == 201, created.content
    data = created.json()["data"]
    job = Job.objects.get(pk=data["id"])
    assert (job.steps, job.threads, job.cron, job.schedule_enabled) == (["dbt seed", "dbt run"], 1, "", False)
    change = {**data, "name": "hourly", "triggers": {**data["triggers"], "schedule": True},
              "schedule": {"cron": "15 * * * *"}, "execution": {"timeout_seconds": 600}}  # fmt: skip
    updated = as_operator.post(f"{V2}/jobs/{job.pk}", change, format="json")
    assert updated.status_code == 200, updated.content
    assert updated.json()["data"]["job_type"] == "scheduled" and updated.json()["data"]["next_run"]
    job.refresh_from_db()
    assert (job.name, job.cron, job.schedule_enabled, job.timeout_seconds) == ("hourly", "15 * * * *", True, 600)
    assert AuditEvent.objects.get(action="job.update", target_id=str(job.pk)).after["name"] == "hourly"
    refused(as_viewer.delete(f"{V2}/jobs/{job.pk}"), 403)
    refused(as_viewer.post(f"{V2}/jobs/", cli_job(environment, name="other"), format="json"), 403)
    deleted = as_operator.delete(f"{V2}/jobs/{job.pk}")
    assert deleted.status_code == 200
    assert (deleted.json()["data"]["id"], deleted.json()["data"]["state"]) == (job.pk, 2)
    assert not Job.objects.filter(pk=job.pk).exists()
    assert AuditEvent.objects.filter(action="job.delete", target_id=str(job.pk), source=Source.API).exists()
    refused(as_operator.delete(f"{V2}/jobs/{job.pk}"), 404)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, field",
    [
        ({"run_lint": True}, "run_lint"),
        ({"triggers": {"on_merge": True}}, "triggers.on_merge"),
        ({"triggers": {"github_webhook": "yes"}}, "triggers.git_provider_webhook"),
        ({"deferring_job_definition_id": 3}, "deferring_job_definition_id"),
        ({"deferring_environment_id": 10**9}, "deferring_environment_id"),
        ({"job_type": "merge"}, "job_type"),
        ({"state": 2}, "state"),
        ({"settings": {"threads": 1, "target_name": "prod"}}, "settings.target_name"),
        ({"dbt_version": "1.5.0"}, "dbt_version"),
        ({"execute_steps": ["dbt run-operation drop_all"]}, "execute_steps"),
        ({"environment_id": 10**9}, "environment_id"),
        ({"project_id": 12345}, "project_id"),
        ({"account_id": 2}, "account_id"),
        ({"id": 5}, "id"),
        ({"colour": "blue"}, "colour"),
        ({"settings": {"threads": "8"}}, "settings.threads"),
    ],
)
def test_a_job_field_the_portal_cannot_honour_is_refused_by_name(as_operator, fields, field):
    environment = default_environment("inventory_transforms")
    answer = refused(as_operator.post(f"{V2}/jobs/", cli_job(environment, **fields), format="json"), 400)
    assert answer["data"]["field"] == field, answer
    assert not Job.objects.exists()


# --- look-ups ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_look_ups_clients_call_beyond_airflows(as_viewer):
    job = make_job()
    assert [a["id"] for a in as_viewer.get("/api/v3/accounts/").json()["data"]] == [1]
    assert as_viewer.get(f"{V2}/projects/{INVENTORY}").json()["data"]["name"] == "inventory_transforms"
    environment = as_viewer.get(f"{V2}/environments/{job.environment_id}").json()["data"]
    assert (environment["name"], environment["project_id"]) == ("dev", INVENTORY)
    everywhere = as_viewer.get(f"{V3}/environments/").json()["data"]
    assert [e["id"] for e in everywhere] == [job.environment_id]
    assert as_viewer.get(f"{V3}/environments/{job.environment_id}/").json()["data"]["id"] == job.environment_id
    assert [j["id"] for j in as_viewer.get(f"{V3}/jobs/").json()["data"]] == [job.pk]  # v3 as v2
    assert as_viewer.get(f"{V3}/jobs/{job.pk}").json()["data"]["execute_steps"] == ["dbt build"]
    refused(as_viewer.get(f"{V2}/environments/{10**9}"), 404)


@pytest.mark.django_db
def test_a_job_with_its_most_recent_runs(as_viewer, world):
    nightly = world["jobs"][0]
    params = {"include_related": '["most_recent_run", "most_recent_completed_run"]'}
    data = as_viewer.get(f"{V2}/jobs/{nightly.pk}", params).json()["data"]
    assert data["most_recent_run"]["id"] == world["runs"][1].pk
    assert data["most_recent_completed_run"]["id"] == world["runs"][1].pk
    hourly = as_viewer.get(f"{V2}/jobs/", {"id__in": world["jobs"][1].pk, **params}).json()["data"][0]
    assert (hourly["most_recent_run"]["status"], hourly["most_recent_completed_run"]) == (1, None)
    assert "most_recent_run" not in as_viewer.get(f"{V2}/jobs/{nightly.pk}").json()["data"]


# --- every filter ------------------------------------------------------------------------------
@pytest.fixture
def world(dbt_projects_dir):
    """Two projects' jobs and runs, three environments."""
    dev = default_environment("inventory_transforms")
    prod = Environment.objects.create(project="inventory_transforms", name="prod", target_name="prod")
    sleepy_env = default_environment("sleepy")
    nightly = make_job()
    hourly = make_job(name="hourly", cron="0 * * * *", schedule_enabled=True, environment=prod.pk)
    sleepy = make_job(project="sleepy", name="nap")
    now = timezone.now()
    runs = [
        make_run(nightly, RunState.SUCCESS, finished_at=now - timedelta(days=2)),
        make_run(nightly, RunState.FAILED, finished_at=now - timedelta(hours=1)),
        make_run(hourly, RunState.QUEUED, pull_request=7),
        make_run(sleepy, RunState.SUCCESS, finished_at=now, pull_request=8),
    ]
    return {"dev": dev, "prod": prod, "sleepy_env": sleepy_env, "jobs": [nightly, hourly, sleepy], "runs": runs}


def filter_cases(world) -> list[tuple[str, str, object, object]]:
    """(list, parameter, value, the ids answered or a status code)."""
    dev, prod, sleepy_env = world["dev"], world["prod"], world["sleepy_env"]
    nightly, hourly, sleepy = (job.pk for job in world["jobs"])
    r1, r2, r3, r4 = (run.pk for run in world["runs"])
    sleepy_id = project_id("sleepy")
    now = timezone.now()
    window = json.dumps([(now - timedelta(hours=3)).isoformat(), now.isoformat()])
    return [
        ("runs", "job_definition_id", nightly, [r1, r2]),
        ("runs", "job_definition_id__in", f"[{hourly}, {sleepy}]", [r3, r4]),
        ("runs", "environment_id", prod.pk, [r3]),
        ("runs", "environment_id__in", f"{dev.pk},{sleepy_env.pk}", [r1, r2, r4]),
        ("runs", "project_id", sleepy_id, [r4]),
        ("runs", "project_id__in", "[999]", []),
        ("runs", "status", 10, [r1, r4]),
        ("runs", "status__in", "[1, 20]", [r2, r3]),
        ("runs", "id__in", f"[{r1}, {r4}]", [r1, r4]),
        ("runs", "finished_at__range", window, [r2, r4]),
        ("runs", "finished_at__range", '["2020-01-01", null]', [r1, r2, r4]),
        ("runs", "created_at__range", json.dumps([None, (now - timedelta(days=1)).isoformat()]), []),
        ("runs", "started_at__range", window, []),
        ("runs", "include_related", "['trigger', 'job']", [r1, r2, r3, r4]),
        ("runs", "finished_at__range", "yesterday", 400),
        ("runs", "pr_id", 7, [r3]),
        ("runs", "pr_id__in", "[8, 9]", [r4]),
        ("runs", "pr_id", "x", 400),
        ("runs", "deferring_run_id", 7, 400),
        ("runs", "job_id", nightly, 400),
        ("jobs", "project_id", sleepy_id, [sleepy]),
        ("jobs", "project_id__in", "[999]", []),
        ("jobs", "project_id__in", f"[{sleepy_id}, {INVENTORY}]", [nightly, hourly, sleepy]),
        ("jobs", "environment_id", prod.pk, [hourly]),
        ("jobs", "environment_id__in", f"[{dev.pk}]", [nightly]),
        ("jobs", "name", "nap", [sleepy]),
        ("jobs", "name__icontains", "LY", [nightly, hourly]),
        ("jobs", "id__in", f"[{hourly}]", [hourly]),
        ("jobs", "state", 1, [nightly, hourly, sleepy]),
        ("jobs", "state", 2, []),
        ("jobs", "state", 3, 400),
        ("jobs", "job_type", "scheduled", [hourly]),
        ("jobs", "job_type", "other", [nightly, sleepy]),
        ("jobs", "job_type", "ci", []),
        ("jobs", "job_type", "nightly", 400),
        ("jobs", "include_related", "most_recent_run,most_recent_completed_run", [nightly, hourly, sleepy]),
        ("jobs", "include_related", "run_steps", 400),
        ("jobs", "status", 1, 400),
        ("environments", "name", "prod", [prod.pk]),
        ("environments", "name__icontains", "DE", [dev.pk, sleepy_env.pk]),
        ("environments", "project_id", sleepy_id, [sleepy_env.pk]),
        ("environments", "project_id__in", f"[{INVENTORY}]", [dev.pk, prod.pk]),
        ("environments", "id__in", f"[{prod.pk}]", [prod.pk]),
        ("environments", "state", 2, []),
        ("environments", "type", "deployment", [dev.pk, prod.pk, sleepy_env.pk]),
        ("environments", "type", "development", []),
        ("environments", "deployment_type", "production", [prod.pk]),
        ("environments", "deployment_type", "staging", []),
        ("environments", "dbt_version", dbt_version(), [dev.pk, prod.pk, sleepy_env.pk]),
        ("environments", "dbt_version", "1.5.0", []),
        ("environments", "credentials_id", 1, 400),
        ("projects", "name", "sleepy", [sleepy_id]),
        ("projects", "name__icontains", "invent", [INVENTORY]),
        ("projects", "id__in", f"[{sleepy_id}]", [sleepy_id]),
        ("projects", "state", 2, []),
        ("projects", "repository_id", 1, 400),
        ("accounts", "state", 1, [1]),
        ("accounts", "state", 2, []),
    ]


LISTS = {
    "runs": (f"{V2}/runs/", api.RUN_FILTERS),
    "jobs": (f"{V2}/jobs/", api.JOB_FILTERS),
    "environments": (f"{V3}/environments/", api.ENVIRONMENT_FILTERS),
    "projects": (f"{V3}/projects/", api.ProjectListView.filters),
    "accounts": ("/api/v3/accounts/", api.AccountListView.filters),
}


@pytest.mark.django_db
def test_every_filter_changes_the_answer_or_is_refused_by_name(as_viewer, world):
    cases = filter_cases(world)
    for name, (_, filters) in LISTS.items():  # the walk covers each list's every filter
        assert {param for kind, param, _, _ in cases if kind == name} >= filters, name
    for kind, param, value, expected in cases:
        path = LISTS[kind][0]
        response = as_viewer.get(path, {param: value, "order_by": "id", "limit": 100})
        if isinstance(expected, int):
            assert param in refused(response, expected)["status"]["user_message"], (kind, param, value)
            continue
        assert response.status_code == 200, (kind, param, value, response.content)
        ids = [item["id"] for item in response.json()["data"]]
        assert ids == sorted(expected), (kind, param, value, ids)


@pytest.mark.django_db
def test_every_order_by_field_orders_and_an_unknown_one_is_refused(as_viewer, world):
    for path, fields in ((f"{V2}/runs/", api.RUN_ORDER), (f"{V2}/jobs/", api.JOB_ORDER),
                         (f"{V3}/environments/", api.NAME_ORDER), (f"{V3}/projects/", api.NAME_ORDER)):  # fmt: skip
        for field in fields:
            up = [item["id"] for item in as_viewer.get(path, {"order_by": field}).json()["data"]]
            down = [item["id"] for item in as_viewer.get(path, {"order_by": f"-{field}"}).json()["data"]]
            assert sorted(up) == sorted(down) and len(up) > 1, (path, field)
            if field == "id":
                assert up == sorted(up) and down == up[::-1]
        assert "order_by" in refused(as_viewer.get(path, {"order_by": "colour"}), 400)["status"]["user_message"]
    finished = [r["id"] for r in as_viewer.get(f"{V2}/runs/", {"order_by": "finished_at"}).json()["data"]]
    assert finished == [run.pk for run in (world["runs"][0], world["runs"][1], world["runs"][3], world["runs"][2])]


# --- dbt Cloud's run variables -----------------------------------------------------------------
def test_a_run_of_no_job_names_the_environment_it_ran_in(transactional_db, dbt_projects_dir, operator):
    """DBT_CLOUD_* in run_results.json's metadata.env (a real dbt): no job, the default
    environment the worker chose, the cause or the door as the reason."""
    from runs.services import trigger_run
    from runs.worker import execute_run

    run = trigger_run(project="airflow_demo", command="run", select="base", actor=operator, source="command",
                      enqueue=False)  # fmt: skip
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS, run.reason
    results = json.loads(client_for(operator).get(f"{V2}/runs/{run.pk}/artifacts/run_results.json").getvalue())
    env = results["metadata"]["env"]
    assert {name: env[name] for name in env if name.startswith("DBT_CLOUD_")} == {
        "DBT_CLOUD_ACCOUNT_ID": "1",
        "DBT_CLOUD_PROJECT_ID": str(project_id("airflow_demo")),
        "DBT_CLOUD_ENVIRONMENT_ID": str(default_environment("airflow_demo").pk),
        "DBT_CLOUD_JOB_ID": "",
        "DBT_CLOUD_RUN_ID": str(run.pk),
        "DBT_CLOUD_RUN_REASON": "Kicked off via the portal's Management command",
        "DBT_CLOUD_RUN_REASON_CATEGORY": "other",
    }
