"""The jobs and environments pages, a job run's page, and the cron trigger of a job (its
django-q2 Schedule row, missed slots, the overlap guard)."""

from __future__ import annotations

import html as html_module
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from audit.models import AuditEvent
from runs.environments import create_environment
from runs.jobs import create_job, run_scheduled
from runs.models import Environment, Job, NodeResult, Run, RunState, RunStep, StepState
from runs.notifications import create_target

pytestmark = pytest.mark.django_db


def job_post(**overrides) -> dict:
    data = {
        "name": "nightly",
        "project": "sleepy",
        "steps": "dbt run --select fast\r\n\r\ndbt ls",
        "cron": "0 3 * * *",
        "schedule_enabled": "on",
    }
    return {key: value for key, value in {**data, **overrides}.items() if value is not None}


def make_job(operator, **fields) -> Job:
    defaults = {"name": "nightly", "steps": ["dbt run --select fast"], "cron": "0 3 * * *", "schedule_enabled": True}
    return create_job(actor=operator, source="web", project="sleepy", **{**defaults, **fields})


def test_manager_creates_a_job_on_the_page_and_sees_it_listed(client, operator, dbt_projects_dir):
    client.force_login(operator)
    assert 'data-testid="job-form"' in client.get("/jobs/new/").content.decode()
    response = client.post("/jobs/new/", job_post(description="the nightly build"))
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.steps == ["dbt run --select fast", "dbt ls"] and job.environment.name == "dev"
    q_schedule = Schedule.objects.get(pk=job.q_schedule_id)
    assert (q_schedule.func, q_schedule.cron, q_schedule.repeats) == ("runs.jobs.run_scheduled", "0 3 * * *", -1)
    assert q_schedule.next_run > timezone.now()
    assert AuditEvent.objects.filter(action="job.create", target_id=str(job.pk), source="web").exists()
    page = client.get("/jobs/").content.decode()
    assert f'href="/jobs/{job.pk}/">nightly</a>' in page and "<code>dbt run --select fast</code>" in page
    assert "0 3 * * *" in page and "never run" in page
    detail = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "the nightly build" in detail and "Run now" in detail and 'data-testid="job-edit-form"' in detail


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"cron": "every night"}, "is not a cron expression"),
        ({"cron": "0 0 31 2 *"}, "never fires"),
        ({"steps": "dbt run --select nope"}, "matches no node"),
        ({"steps": "dbt run-operation drop_everything"}, "run-operation"),
        ({"steps": " "}, "This field is required"),
        ({"cron": "", "schedule_enabled": "on"}, "a schedule needs a cron expression"),
        ({"timeout_seconds": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_job_is_a_form_error_and_nothing_changes(client, operator, dbt_projects_dir, overrides, words):
    client.force_login(operator)
    response = client.post("/jobs/new/", job_post(**overrides))
    assert response.status_code == 400 and words in response.content.decode()
    assert not Job.objects.exists() and not Schedule.objects.filter(func__startswith="runs.jobs").exists()
    assert not AuditEvent.objects.filter(action__startswith="job.").exists()


def test_an_impossible_cron_is_a_400_on_cron_through_the_api(api_client, operator, dbt_projects_dir):
    """February has no 31st: the expression parses but has no next slot."""
    api_client.force_authenticate(operator)
    job = {"project": "sleepy", "name": "never", "steps": ["dbt run --select fast"], "cron": "0 0 31 2 *"}
    response = api_client.post("/api/v1/jobs/", job, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "cron" and "never fires" in response.json()["detail"]
    made = make_job(operator)
    response = api_client.patch(f"/api/v1/jobs/{made.pk}/", {"cron": "0 0 30 2 *"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "cron"
    made.refresh_from_db()
    assert made.cron == "0 3 * * *" and Schedule.objects.get(pk=made.q_schedule_id).cron == "0 3 * * *"
    assert not AuditEvent.objects.filter(action="job.update").exists()


def test_a_second_job_of_the_same_name_is_refused(client, operator, dbt_projects_dir):
    make_job(operator)
    client.force_login(operator)
    response = client.post("/jobs/new/", job_post())
    assert response.status_code == 400 and "already has a job named" in response.content.decode()
    assert Job.objects.count() == 1


def test_editing_a_job_goes_through_update_job_and_audits_the_diff(client, operator, dbt_projects_dir):
    job = make_job(operator)
    client.force_login(operator)
    edit = job_post(steps="dbt seed\ndbt run --select fast", cron="30 4 * * *", threads="2")
    del edit["project"]
    assert client.post(f"/jobs/{job.pk}/", edit).status_code == 302
    job.refresh_from_db()
    assert (job.steps, job.cron, job.threads) == (["dbt seed", "dbt run --select fast"], "30 4 * * *", 2)
    assert Schedule.objects.get(pk=job.q_schedule_id).cron == "30 4 * * *"
    event = AuditEvent.objects.get(action="job.update", target_id=str(job.pk))
    assert event.before == {"cron": "0 3 * * *", "steps": ["dbt run --select fast"], "threads": None}
    assert event.after == {"cron": "30 4 * * *", "steps": ["dbt seed", "dbt run --select fast"], "threads": 2}


def test_a_bad_edit_shows_the_error_and_changes_nothing(client, operator, dbt_projects_dir):
    job = make_job(operator)
    client.force_login(operator)
    edit = {"name": "nightly", "steps": "dbt run --select nope", "cron": "0 3 * * *"}
    response = client.post(f"/jobs/{job.pk}/", edit)
    assert response.status_code == 400 and "matches no node" in response.content.decode()
    job.refresh_from_db()
    assert job.steps == ["dbt run --select fast"] and job.schedule_enabled
    assert not AuditEvent.objects.filter(action="job.update").exists()


def test_disable_enable_and_delete_the_cron_trigger(client, operator, dbt_projects_dir):
    job = make_job(operator, cron="0 * * * *")
    client.force_login(operator)
    client.post(f"/jobs/{job.pk}/toggle/")
    assert Schedule.objects.get(pk=job.q_schedule_id).repeats == 0
    assert "Enable schedule" in client.get(f"/jobs/{job.pk}/").content.decode()
    assert run_scheduled(job.pk) is None and not Run.objects.exists()  # a disabled trigger runs nothing
    client.post(f"/jobs/{job.pk}/toggle/")
    assert Schedule.objects.get(pk=job.q_schedule_id).repeats == -1
    changes = AuditEvent.objects.filter(action="job.update", target_id=str(job.pk)).order_by("id")
    assert [event.after for event in changes] == [{"schedule_enabled": False}, {"schedule_enabled": True}]
    target = create_target(actor=operator, source="web", job=job, emails="team@example.com")
    client.post(f"/jobs/{job.pk}/delete/")
    assert not Job.objects.exists() and not Schedule.objects.filter(pk=job.q_schedule_id).exists()
    assert AuditEvent.objects.filter(action="job.delete", target_id=str(job.pk)).exists()
    assert AuditEvent.objects.filter(action="notification.delete", target_id=str(target.pk)).exists()


def test_run_now_queues_a_run_of_the_job_with_its_steps(client, operator, dbt_projects_dir, queued):
    job = make_job(operator, steps=["dbt seed", "dbt run --select fast"])
    client.force_login(operator)
    response = client.post(f"/jobs/{job.pk}/run/")
    run = Run.objects.get(job=job)
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert list(run.steps.values_list("index", "name")) == [(1, "dbt seed"), (2, "dbt run --select fast")]
    assert (run.source, run.triggered_by) == ("web", operator)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/runs/{run.pk}/">#{run.pk}</a>' in page


def test_viewer_sees_jobs_but_cannot_change_or_run_them(client, viewer, operator, dbt_projects_dir):
    job = make_job(operator)
    client.force_login(viewer)
    listing = client.get("/jobs/").content.decode()
    assert "nightly" in listing and "New job" not in listing
    detail = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "nightly" in detail and "Run now" not in detail and "job-edit-form" not in detail
    assert client.get("/jobs/new/").status_code == 403
    assert client.post("/jobs/new/", job_post(name="other")).status_code == 403
    assert client.post(f"/jobs/{job.pk}/", job_post(cron="")).status_code == 403
    for action in ("run", "toggle", "delete"):
        assert client.post(f"/jobs/{job.pk}/{action}/").status_code == 403
    job.refresh_from_db()
    assert job.schedule_enabled and job.cron == "0 3 * * *" and not Run.objects.exists()


def test_job_actions_are_posts(client, operator, dbt_projects_dir):
    job = make_job(operator)
    client.force_login(operator)
    for action in ("run", "toggle", "delete"):
        assert client.get(f"/jobs/{job.pk}/{action}/").status_code == 405
    assert Job.objects.filter(pk=job.pk, schedule_enabled=True).exists() and not Run.objects.exists()


def test_the_list_shows_the_last_run_and_the_success_rate_of_the_last_20(client, viewer, operator, dbt_projects_dir):
    job = make_job(operator)
    base = timezone.now() - timedelta(days=1)
    states = [RunState.FAILED] * 5 + [RunState.SUCCESS] * 15 + [RunState.FAILED] * 5 + [RunState.SKIPPED]
    for minute, state in enumerate(states):  # oldest first: the 5 oldest failures fall out of the last 20
        Run.objects.create(
            project="sleepy", timeout_seconds=60, source="schedule", job=job, state=state,
            queued_at=base + timedelta(minutes=minute),
        )  # fmt: skip
    latest = Run.objects.create(project="sleepy", timeout_seconds=60, source="web", job=job, state=RunState.RUNNING)
    client.force_login(viewer)
    page = client.get("/jobs/").content.decode()
    assert f'href="/runs/{latest.pk}/" class="badge state-running"' in page
    assert "75% <span" in page and "of 20" in page  # 15 of the last 20 final runs; skipped slots ran nothing


def environment_post(**overrides) -> dict:
    data = {"project": "sleepy", "name": "prod", "target_name": "prod", "schema": "analytics", "threads": "8"}
    return {key: value for key, value in {**data, **overrides}.items() if value is not None}


def test_admin_creates_and_edits_an_environment(client, admin_user, dbt_projects_dir, monkeypatch):
    client.force_login(admin_user)
    page = client.get("/jobs/environments/").content.decode()
    assert "never stored or shown" in page and "Blank = the portal's warehouse." in page
    response = client.post(
        "/jobs/environments/",
        environment_post(password_env="DBT_ENV_SECRET_PROD", env_vars='{"DBT_VAR_TEAM": "data"}'),
    )
    assert response.status_code == 302
    environment = Environment.objects.get(name="prod")
    assert (environment.schema, environment.threads) == ("analytics", 8)
    assert environment.password_env == "DBT_ENV_SECRET_PROD"
    assert environment.env_vars == {"DBT_VAR_TEAM": "data"}
    monkeypatch.setenv("DBT_ENV_SECRET_PROD", "s3cret-value")
    listing = client.get("/jobs/environments/").content.decode()
    assert "DBT_ENV_SECRET_PROD" in listing and "s3cret-value" not in listing and "DBT_VAR_TEAM" in listing

    form = client.get(f"/jobs/environments/{environment.pk}/").content.decode()
    assert 'value="analytics"' in form and "s3cret-value" not in form
    edit = environment_post(schema="marts", threads="2", env_vars='{"DBT_VAR_TEAM": "data"}')
    del edit["project"]
    assert client.post(f"/jobs/environments/{environment.pk}/", edit).status_code == 302
    environment.refresh_from_db()
    assert (environment.schema, environment.threads, environment.password_env) == ("marts", 2, "")
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="environment.").order_by("id")] == [
        "environment.create",
        "environment.update",
    ]


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"env_vars": "[1, 2]"}, "env vars must be a JSON object"),
        ({"env_vars": "{nope"}, "env vars are not valid JSON"),
        ({"env_vars": '{"DBT_PASSWORD": "x"}'}, "must start with DBT_VAR_"),
        ({"password_env": "SECRET_KEY"}, "one of the portal&#x27;s own variables"),
        ({"port": "70000"}, "less than or equal to 65535"),
        ({"password_env": "not a name"}, "password_env must be an environment variable name"),
        ({"schema": "a;drop"}, "schema must be a schema name"),
    ],
)
def test_bad_environment_is_a_form_error_and_nothing_changes(client, admin_user, dbt_projects_dir, overrides, words):
    client.force_login(admin_user)
    response = client.post("/jobs/environments/", environment_post(**overrides))
    assert response.status_code == 400 and words in response.content.decode()
    assert not Environment.objects.filter(name="prod").exists()


def test_an_environment_used_by_a_job_is_not_deleted(client, operator, dbt_projects_dir):
    environment = create_environment(actor=operator, source="web", project="sleepy", name="prod")
    make_job(operator, environment=environment.pk)
    client.force_login(operator)
    response = client.post(f"/jobs/environments/{environment.pk}/delete/", follow=True)
    assert "is used by jobs" in response.content.decode() and Environment.objects.filter(pk=environment.pk).exists()


def test_an_environment_with_a_queued_run_is_not_deleted(client, operator, dbt_projects_dir):
    environment = create_environment(actor=operator, source="web", project="sleepy", name="scratch")
    run = Run.objects.create(
        project="sleepy", command="build", environment=environment, timeout_seconds=60, source="web"
    )
    client.force_login(operator)
    response = client.post(f"/jobs/environments/{environment.pk}/delete/", follow=True)
    assert "has queued or running runs" in response.content.decode()
    run.refresh_from_db()
    assert run.environment == environment  # it still runs where it was asked to


def test_viewer_sees_environments_but_cannot_change_them(client, viewer, operator, dbt_projects_dir):
    environment = create_environment(actor=operator, source="web", project="sleepy", name="prod")
    client.force_login(viewer)
    page = client.get("/jobs/environments/").content.decode()
    assert "prod" in page and "environment-form" not in page
    assert client.post("/jobs/environments/", environment_post(name="other")).status_code == 403
    assert client.get(f"/jobs/environments/{environment.pk}/").status_code == 403
    assert client.post(f"/jobs/environments/{environment.pk}/delete/").status_code == 403
    assert list(Environment.objects.values_list("name", flat=True)) == ["prod"]


def finished_job_run(job: Job, steps: list[tuple[str, str, int]], state=RunState.FAILED, **fields) -> Run:
    """A finished run of the job with these (name, state, exit code) steps, each with a node."""
    now = timezone.now()
    run = Run.objects.create(
        project=job.project, timeout_seconds=60, job=job, environment=job.environment, state=state,
        started_at=now - timedelta(seconds=10), finished_at=now, **{"source": "web", **fields},
    )  # fmt: skip
    for index, (name, step_state, exit_code) in enumerate(steps, start=1):
        RunStep.objects.create(
            run=run, index=index, name=name, command=name.split()[1], state=step_state, exit_code=exit_code,
            started_at=now - timedelta(seconds=10 - index), finished_at=now - timedelta(seconds=8 - index),
            log_first_line=index * 10,
        )  # fmt: skip
        NodeResult.objects.create(
            run=run, step=index, unique_id=f"model.sleepy.node_of_step_{index}", name=f"node_of_step_{index}",
            status="error" if step_state == StepState.FAILED else "success",
        )  # fmt: skip
    return run


def test_a_job_run_page_shows_the_job_its_steps_and_their_nodes(client, operator, dbt_projects_dir):
    job = make_job(operator)
    run = finished_job_run(
        job,
        [("dbt seed", StepState.SUCCESS, 0), ("dbt run --select fast", StepState.FAILED, 1)],
        source="api",
        cause="Triggered by Airflow nightly",
    )
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'<a href="/jobs/{job.pk}/">nightly</a>' in page
    assert "via dbt Cloud API: Triggered by Airflow nightly" in page
    steps = page[page.index('data-testid="steps-table"') : page.index('data-testid="nodes-table"')]
    assert steps.count('data-testid="step-row"') == 2
    assert '<span class="badge state-success" data-testid="step-state">Success</span>' in steps
    assert '<span class="badge state-failed" data-testid="step-state">Failed</span>' in steps
    assert '<td data-testid="step-exit-code">1</td>' in steps and "2.0 s" in steps
    assert 'href="#log-step-2"' in steps and 'href="#step-2-nodes"' in steps
    nodes = page[page.index('data-testid="nodes-table"') :]
    assert nodes.index('id="step-1-nodes"') < nodes.index("node_of_step_1") < nodes.index('id="step-2-nodes"')
    assert nodes.index('id="step-2-nodes"') < nodes.index("node_of_step_2")
    assert '"step_lines": {"10": 1, "20": 2}' in page  # where the live log puts each step's anchor
    assert 'data-testid="retry"' in page and 'data-testid="rerun"' in page


def test_the_cause_of_a_run_not_from_the_api_is_shown_plainly(client, operator, dbt_projects_dir):
    run = finished_job_run(make_job(operator), [("dbt ls", StepState.SUCCESS, 0)], state=RunState.SUCCESS)
    Run.objects.filter(pk=run.pk).update(cause="cron schedule", source="schedule")
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert '<dd data-testid="run-cause">cron schedule</dd>' in page and "via dbt Cloud API" not in page
    assert 'data-testid="retry"' not in page  # a success has nothing to retry


def test_retry_from_failure_reruns_the_failed_step_and_the_rest(client, operator, viewer, dbt_projects_dir, queued):
    job = make_job(operator, steps=["dbt seed", "dbt run --select fast", "dbt ls"])
    run = finished_job_run(
        job,
        [
            ("dbt seed", StepState.SUCCESS, 0),
            ("dbt run --select fast", StepState.FAILED, 1),
            ("dbt ls", StepState.SKIPPED, None),
        ],
    )
    client.force_login(viewer)
    assert 'data-testid="retry"' not in client.get(f"/runs/{run.pk}/").content.decode()
    assert client.post(f"/runs/{run.pk}/retry/").status_code == 403
    client.force_login(operator)
    assert client.get(f"/runs/{run.pk}/retry/").status_code == 405
    response = client.post(f"/runs/{run.pk}/retry/")
    retry = Run.objects.get(retry_of=run)
    assert response["Location"] == f"/runs/{retry.pk}/"
    assert list(retry.steps.values_list("name", flat=True)) == ["dbt run --select node_of_step_2", "dbt ls"]
    page = client.get(f"/runs/{retry.pk}/").content.decode()
    assert f'retry from failure of <a href="/runs/{run.pk}/">#{run.pk}</a>' in page


@pytest.mark.django_db(transaction=True)  # django-q2's scheduler closes the connection
def test_missed_slots_run_once_and_the_run_belongs_to_the_job(operator, dbt_projects_dir, queued):
    job = make_job(operator, name="every minute", steps=["dbt ls"], cron="* * * * *")
    # 3 hours down; the row is put on this test's private queue, so this scheduler call takes it
    Schedule.objects.filter(pk=job.q_schedule_id).update(
        next_run=timezone.now() - timedelta(hours=3), cluster=Conf.CLUSTER_NAME
    )
    before = timezone.now()
    scheduler()
    assert queued() == ["runs.jobs.run_scheduled"]  # once, not once per missed slot
    assert Schedule.objects.get(pk=job.q_schedule_id).next_run > before  # the next slot, not a missed one
    run = Run.objects.get(pk=run_scheduled(job.pk))
    assert (run.source, run.job, run.state, run.cause) == ("schedule", job, RunState.QUEUED, "cron schedule")
    assert AuditEvent.objects.get(action="run.trigger", target_id=str(run.pk)).actor_username == "schedule:every minute"


def audit_rows_of(client, run: Run) -> list[str]:
    """The audit page's rows about `run`, as a reader sees them."""
    html = client.get("/audit/", {"target": f"runs.run:{run.pk}"}).content.decode()
    return [" ".join(html_module.unescape(re.sub(r"<[^>]+>", "", row)).split()) for row in html.split("<tr>")[2:]]


def test_a_slot_whose_previous_run_is_still_active_is_recorded_as_skipped(
    client, viewer, operator, dbt_projects_dir, queued
):
    job = make_job(operator)
    active = Run.objects.create(project="sleepy", timeout_seconds=60, source="web", job=job, state=RunState.RUNNING)
    skipped = Run.objects.get(pk=run_scheduled(job.pk))
    assert skipped.state == RunState.SKIPPED and f"run #{active.pk}" in skipped.reason
    assert (skipped.job, skipped.source) == (job, "schedule") and not skipped.steps.exists()
    assert skipped.started_at == skipped.finished_at is not None
    assert queued() == []  # nothing was sent to a worker
    event = AuditEvent.objects.get(action="run.trigger", target_id=str(skipped.pk))  # audited as any trigger
    assert (event.actor_username, event.source, event.reason) == ("schedule:nightly", "schedule", "cron schedule")
    assert (event.after["state"], event.after["reason"], event.after["job"]) == ("skipped", skipped.reason, job.pk)
    client.force_login(viewer)
    [row] = audit_rows_of(client, skipped)
    assert "run.trigger" in row and "schedule:nightly" in row and f"run #{skipped.pk} sleepy job nightly" in row
    assert '+ state: "skipped"' in row and "was still running" in row


def test_a_job_that_no_longer_validates_gets_an_error_run(client, viewer, operator, dbt_projects_dir, queued):
    job = make_job(operator)
    Job.objects.filter(pk=job.pk).update(steps=["dbt run --select renamed_model"])  # the model was renamed since
    run = Run.objects.get(pk=run_scheduled(job.pk))
    assert run.state == RunState.ERROR and "matches no node" in run.reason and run.job == job
    assert "runs.notifications.notify_run" in queued()  # it is seen
    event = AuditEvent.objects.get(action="run.trigger", target_id=str(run.pk))
    assert (event.actor_username, event.source, event.reason) == ("schedule:nightly", "schedule", "cron schedule")
    assert (event.after["state"], event.after["reason"]) == ("error", run.reason)
    client.force_login(viewer)
    [row] = audit_rows_of(client, run)
    assert '+ state: "error"' in row and "schedule could not trigger" in row and "matches no node" in row
