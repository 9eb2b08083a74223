"""Schedules (django-q2 cron rows) and notifications (email, webhook with retries)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from audit.models import AuditEvent
from runs.models import NotificationDelivery, Run, RunSchedule, RunState
from runs.notifications import create_target, enqueue_notifications, notify_run
from runs.schedules import create_schedule, run_scheduled

pytestmark = pytest.mark.django_db


def schedule_post(**overrides):
    data = {
        "schedule-name": "nightly",
        "schedule-project": "sleepy",
        "schedule-command": "run",
        "schedule-select": "fast",
        "schedule-cron": "0 3 * * *",
    }
    data.update({f"schedule-{k}": v for k, v in overrides.items()})
    return data


def test_operator_creates_a_schedule_and_sees_its_next_run(client, operator, dbt_projects_dir):
    client.force_login(operator)
    response = client.post("/runs/schedules/", schedule_post())
    assert response.status_code == 302
    schedule = RunSchedule.objects.get()
    q_schedule = Schedule.objects.get(pk=schedule.q_schedule_id)
    assert q_schedule.cron == "0 3 * * *" and q_schedule.func == "runs.schedules.run_scheduled"
    assert q_schedule.next_run > timezone.now()
    assert AuditEvent.objects.filter(action="schedule.create", target_id=str(schedule.pk)).exists()
    page = client.get("/runs/schedules/").content.decode()
    assert "nightly" in page and "run --select fast" in page and "0 3 * * *" in page


@pytest.mark.parametrize(
    "overrides, words",
    [({"cron": "every night"}, "is not a cron expression"), ({"select": "nope"}, "matches no node")],
)
def test_bad_schedule_is_a_form_error_and_nothing_changes(client, operator, dbt_projects_dir, overrides, words):
    client.force_login(operator)
    response = client.post("/runs/schedules/", schedule_post(**overrides))
    assert response.status_code == 400 and words in response.content.decode()
    assert not RunSchedule.objects.exists() and not Schedule.objects.filter(func__startswith="runs.sch").exists()


NIGHTLY = {"name": "nightly", "project": "sleepy", "command": "run", "select": "fast", "cron": "0 3 * * *"}


def test_automation_manages_a_schedule_through_the_api(api_client, operator, dbt_projects_dir):
    api_client.force_authenticate(operator)
    response = api_client.post("/api/v1/schedules/", NIGHTLY, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    q_schedule = Schedule.objects.get(pk=RunSchedule.objects.get(pk=created["id"]).q_schedule_id)
    assert (created["cron"], created["select"], created["enabled"]) == ("0 3 * * *", "fast", True)
    assert created["next_run"] == q_schedule.next_run.isoformat().replace("+00:00", "Z")
    assert [s["name"] for s in api_client.get("/api/v1/schedules/?project=sleepy").json()["results"]] == ["nightly"]

    disabled = api_client.post(f"/api/v1/schedules/{created['id']}/disable/").json()
    assert (disabled["enabled"], disabled["next_run"]) == (False, None)
    enabled = api_client.post(f"/api/v1/schedules/{created['id']}/enable/").json()
    assert enabled["enabled"] and enabled["next_run"] is not None

    assert api_client.delete(f"/api/v1/schedules/{created['id']}/").status_code == 204
    assert not RunSchedule.objects.exists() and not Schedule.objects.filter(pk=q_schedule.pk).exists()
    actions = AuditEvent.objects.filter(action__startswith="schedule.").order_by("id").values_list("action", "source")
    assert list(actions) == [
        ("schedule.create", "api"),
        ("schedule.disable", "api"),
        ("schedule.enable", "api"),
        ("schedule.delete", "api"),
    ]


@pytest.mark.parametrize(
    "overrides, field, words",
    [
        ({"cron": "every night"}, "cron", "is not a cron expression"),
        ({"select": "nope"}, "select", "matches no node"),
        ({"name": ""}, "name", "blank"),
        ({"command": "run-operation"}, "command", "run-operation"),
    ],
)
def test_bad_schedule_through_the_api_is_400_naming_the_field(
    api_client, operator, dbt_projects_dir, overrides, field, words
):
    api_client.force_authenticate(operator)
    response = api_client.post("/api/v1/schedules/", {**NIGHTLY, **overrides}, format="json")
    body = response.json()
    assert (response.status_code, body["field"]) == (400, field) and words in body["detail"], body
    assert not RunSchedule.objects.exists() and not AuditEvent.objects.exists()


def test_viewer_reads_schedules_through_the_api_but_cannot_change_them(api_client, viewer, operator, dbt_projects_dir):
    schedule = create_schedule(actor=operator, source="api", **NIGHTLY)
    api_client.force_authenticate(viewer)
    assert api_client.get(f"/api/v1/schedules/{schedule.pk}/").json()["name"] == "nightly"
    assert api_client.post("/api/v1/schedules/", {**NIGHTLY, "name": "other"}, format="json").status_code == 403
    assert api_client.post(f"/api/v1/schedules/{schedule.pk}/disable/").status_code == 403
    assert api_client.delete(f"/api/v1/schedules/{schedule.pk}/").status_code == 403
    assert RunSchedule.objects.get().enabled


def test_viewer_sees_schedules_but_cannot_change_them(client, viewer, operator, dbt_projects_dir):
    schedule = create_schedule(actor=operator, source="web", name="n", project="sleepy", command="ls", cron="* * * * *")
    client.force_login(viewer)
    page = client.get("/runs/schedules/").content.decode()
    assert "n" in page and "Create schedule" not in page
    assert client.post("/runs/schedules/", schedule_post()).status_code == 403
    assert client.post(f"/runs/schedules/{schedule.pk}/toggle/").status_code == 403


@pytest.mark.django_db(transaction=True)  # django-q2's scheduler closes the connection
def test_missed_slots_run_once_and_the_run_belongs_to_the_schedule(operator, dbt_projects_dir, queued):
    schedule = create_schedule(
        actor=operator, source="web", name="every minute", project="sleepy", command="ls", cron="* * * * *"
    )
    # 3 hours down; the row is put on this test's private queue, so this scheduler call takes it
    Schedule.objects.filter(pk=schedule.q_schedule_id).update(
        next_run=timezone.now() - timedelta(hours=3), cluster=Conf.CLUSTER_NAME
    )
    before = timezone.now()
    scheduler()
    assert queued() == ["runs.schedules.run_scheduled"]  # once, not once per missed slot
    assert Schedule.objects.get(pk=schedule.q_schedule_id).next_run > before  # the next slot, not a missed one
    run = Run.objects.get(pk=run_scheduled(schedule.pk))
    assert run.source == "schedule" and run.schedule == schedule and run.state == RunState.QUEUED
    assert AuditEvent.objects.get(action="run.trigger", target_id=str(run.pk)).actor_username == "schedule:every minute"


def test_disable_and_enable_are_audited(client, operator, dbt_projects_dir):
    schedule = create_schedule(actor=operator, source="web", name="n", project="sleepy", command="ls", cron="0 * * * *")
    client.force_login(operator)
    client.post(f"/runs/schedules/{schedule.pk}/toggle/")
    assert Schedule.objects.get(pk=schedule.q_schedule_id).repeats == 0
    assert run_scheduled(schedule.pk) is None
    client.post(f"/runs/schedules/{schedule.pk}/toggle/")
    assert Schedule.objects.get(pk=schedule.q_schedule_id).repeats == -1
    events = AuditEvent.objects.filter(target_type="runs.runschedule", target_id=str(schedule.pk)).order_by("id")
    actions = list(events.values_list("action", flat=True))
    assert actions[-2:] == ["schedule.disable", "schedule.enable"]
    client.post(f"/runs/schedules/{schedule.pk}/delete/")
    assert not RunSchedule.objects.exists() and not Schedule.objects.filter(pk=schedule.q_schedule_id).exists()


def failed_run(project="sleepy", state=RunState.FAILED) -> Run:
    now = timezone.now()
    return Run.objects.create(
        project=project,
        command="build",
        timeout_seconds=60,
        source="api",
        state=state,
        reason="1 node(s) failed: broken",
        started_at=now,
        finished_at=now,
    )


def test_failed_run_emails_and_posts_the_webhook(operator, webhook, settings):
    hook, url = webhook
    create_target(actor=operator, source="web", project="sleepy", emails="team@example.com", webhook_url=url)
    create_target(actor=operator, source="web", project="other", emails="other@example.com")
    run = failed_run()
    assert notify_run(run.pk) == 2
    assert [m.to for m in mail.outbox] == [["team@example.com"]]
    assert "failed" in mail.outbox[0].subject and f"/runs/{run.pk}/" in mail.outbox[0].body
    assert hook.received[0]["run_id"] == run.pk and hook.received[0]["state"] == "failed"
    assert set(NotificationDelivery.objects.values_list("channel", "status")) == {
        ("email", "sent"),
        ("webhook", "sent"),
    }
    assert AuditEvent.objects.filter(action="notification.create").count() == 2


def test_webhook_failures_are_retried_and_recorded(operator, webhook):
    hook, url = webhook
    hook.statuses = [503]
    create_target(actor=operator, source="web", webhook_url=url)
    notify_run(failed_run().pk)
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == "failed" and delivery.attempts == 3 and delivery.response_status == 503
    assert len(hook.received) == 3


def test_target_needs_a_destination(client, operator, dbt_projects_dir):
    client.force_login(operator)
    response = client.post("/runs/schedules/", {"target-project": "sleepy", "target-emails": ""})
    assert response.status_code == 400 and "at least one email address or a webhook" in response.content.decode()


def test_webhook_that_recovers_is_delivered_on_a_later_attempt(operator, webhook):
    hook, url = webhook
    hook.statuses = [502, 200]
    create_target(actor=operator, source="web", webhook_url=url)
    run = failed_run()
    assert notify_run(run.pk) == 1
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == "sent" and delivery.attempts == 2 and delivery.response_status == 200
    assert [body["run_id"] for body in hook.received] == [run.pk, run.pk]


@pytest.mark.parametrize("state, words", [(RunState.ERROR, "error"), (RunState.TIMED_OUT, "timed out")])
def test_error_and_timed_out_runs_email_too(operator, state, words):
    create_target(actor=operator, source="web", project="sleepy", emails="team@example.com")
    run = failed_run(state=state)
    assert notify_run(run.pk) == 1
    assert mail.outbox[0].subject.endswith(f"sleepy {words}")
    assert NotificationDelivery.objects.get().destination == "team@example.com"


@pytest.mark.parametrize(
    "state, notified",
    [
        (RunState.FAILED, True),
        (RunState.ERROR, True),
        (RunState.TIMED_OUT, True),
        (RunState.SUCCESS, False),
        (RunState.CANCELLED, False),
    ],
)
def test_only_failed_error_and_timed_out_runs_notify(queued, state, notified):
    enqueue_notifications(failed_run(state=state))
    assert queued() == (["runs.notifications.notify_run"] if notified else [])
