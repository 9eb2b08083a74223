"""Alerts: signed webhook bodies (verified with docs/runs.md's own example), warn-severity test
failures that alert when the job opts in, and the notification-targets API whose secret is
write-only. The far end is a local HTTP server, mail Django's outbox; the rest is real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from runs.jobs import create_job, trigger_job
from runs.models import NodeResult, NotificationDelivery, NotificationTarget, Run, RunState
from runs.notifications import create_target, notify_run
from runs.worker import execute_run

pytestmark = pytest.mark.django_db

RUNS_DOC = Path(__file__).resolve().parents[2] / "docs" / "runs.md"
API = "/api/v1/notification-targets/"
KNOWN_SECRET = "a-receivers-known-secret-0123456789"


@pytest.fixture(scope="module")
def verify():
    """docs/runs.md's verification example, run as written."""
    code = re.search(r"```python\n(import hashlib.*?)```", RUNS_DOC.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the docs' own snippet
    return namespace["verify"]


def finished_run(state=RunState.FAILED, job=None, project="sleepy") -> Run:
    now = timezone.now()
    return Run.objects.create(
        project=project, command="build", timeout_seconds=60, source="api", state=state, job=job,
        reason="done", queued_at=now, started_at=now, finished_at=now,
    )  # fmt: skip


def test_a_webhook_body_is_signed_with_the_targets_secret_and_a_tampered_one_fails(operator, webhook, verify):
    hook, url = webhook
    target = create_target(actor=operator, source="web", webhook_url=url, secret=KNOWN_SECRET)
    assert notify_run(finished_run().pk) == 1
    body, headers = hook.raw[0], hook.headers[0]
    assert headers["X-Portal-Signature"].startswith("sha256=") and headers["X-Portal-Timestamp"].isdigit()
    assert verify(target.secret, headers, body)
    assert not verify(target.secret, headers, body.replace(b'"failed"', b'"success"'))
    assert not verify("another-secret-0123456789", headers, body)
    replayed = {**headers, "X-Portal-Timestamp": str(int(headers["X-Portal-Timestamp"]) + 1)}
    assert not verify(target.secret, replayed, body)
    stale = {**headers, "X-Portal-Timestamp": "1000000000"}
    assert not verify(target.secret, stale, body)


def test_a_target_made_without_a_secret_gets_a_random_one_that_signs(operator, webhook, verify):
    hook, url = webhook
    first = create_target(actor=operator, source="web", webhook_url=url)
    second = create_target(actor=operator, source="web", webhook_url=url)
    assert len(first.secret) >= 40 and first.secret != second.secret
    assert notify_run(finished_run().pk) == 2
    deliveries = list(zip(hook.headers, hook.raw, strict=True))
    verified = [[verify(t.secret, headers, body) for t in (first, second)] for headers, body in deliveries]
    assert sorted(verified) == [[False, True], [True, False]]  # each with its own target's secret


def warned_run(job) -> Run:
    """A success with one warn-severity test failing (twice: in two steps), a passing test
    and a model."""
    run = finished_run(state=RunState.SUCCESS, job=job)
    rows = [
        (1, "test.sleepy.app_owner_exists", "app_owner_exists", "test", "warn", 3, "Got 3 results, configured to warn"),
        (2, "test.sleepy.app_owner_exists", "app_owner_exists", "test", "warn", 2, "Got 2 results, configured to warn"),
        (1, "test.sleepy.not_null_users_id", "not_null_users_id", "test", "pass", 0, ""),
        (1, "model.sleepy.users", "users", "model", "success", None, ""),
    ]
    for step, unique_id, name, resource_type, status, failures, message in rows:
        NodeResult.objects.create(
            run=run, step=step, unique_id=unique_id, name=name, resource_type=resource_type, status=status,
            failures=failures, message=message,
        )  # fmt: skip
    return run


def test_warnings_alert_the_on_failure_targets_of_a_job_that_opts_in(operator, webhook, dbt_projects_dir):
    hook, url = webhook
    job = create_job(
        actor=operator, source="web", project="sleepy", name="nightly", steps=["dbt ls"], alert_on_warn=True
    )
    create_target(actor=operator, source="web", job=job, emails="oncall@example.com", webhook_url=url)
    create_target(actor=operator, source="web", project="sleepy", emails="quiet@example.com", on_failure=False,
                  on_recovery=True)  # fmt: skip
    run = warned_run(job)
    assert notify_run(run.pk) == 2
    [message] = mail.outbox
    assert message.to == ["oncall@example.com"]
    assert message.subject == f"[portal] run #{run.pk} sleepy success with 1 test warning(s)"
    assert "app_owner_exists (2 failing row(s)): Got 2 results" in message.body
    assert "not_null_users_id" not in message.body
    assert hook.received[0]["state"] == "success"
    assert hook.received[0]["warnings"] == [
        {"unique_id": "test.sleepy.app_owner_exists", "name": "app_owner_exists", "failures": 2}
    ]


def test_warnings_alert_nobody_when_the_job_does_not_opt_in(operator, webhook, dbt_projects_dir):
    hook, url = webhook
    job = create_job(actor=operator, source="web", project="sleepy", name="nightly", steps=["dbt ls"])
    create_target(actor=operator, source="web", project="sleepy", emails="oncall@example.com", webhook_url=url)
    assert notify_run(warned_run(job).pk) == 0
    assert mail.outbox == [] and hook.received == []
    assert not NotificationDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_real_build_whose_warn_test_fails_alerts_the_job_that_opts_in(operator, seeded_warehouse, queued):
    """inventory_transforms' app_owner_exists (warn severity) finds the seeds' orphaned
    applications: dbt succeeds, the run is a success, and the job's on-failure target hears."""
    job = create_job(
        actor=operator, source="web", project="inventory_transforms", name="owners",
        steps=["dbt build --select +app_owner_exists"], alert_on_warn=True,
    )  # fmt: skip
    create_target(actor=operator, source="web", job=job, emails="oncall@example.com")
    run = trigger_job(job, actor=operator, source="web")
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS, run.reason
    assert "runs.notifications.notify_run" in queued()
    assert notify_run(run.pk) == 1
    assert "test warning(s)" in mail.outbox[0].subject and "- app_owner_exists (" in mail.outbox[0].body


def test_a_job_opts_in_on_its_page_and_through_the_api_audited(client, api_client, operator, dbt_projects_dir):
    job = create_job(actor=operator, source="web", project="sleepy", name="nightly", steps=["dbt ls"])
    client.force_login(operator)
    form = {"name": "nightly", "environment": job.environment_id, "steps": "dbt ls", "alert_on_warn": "on"}
    assert client.post(f"/jobs/{job.pk}/", form).status_code == 302
    job.refresh_from_db()
    assert job.alert_on_warn
    assert "tests that warn notify the on-failure targets" in client.get(f"/jobs/{job.pk}/").content.decode()
    update = AuditEvent.objects.get(action="job.update")
    assert (update.before, update.after) == ({"alert_on_warn": False}, {"alert_on_warn": True})
    api_client.force_authenticate(operator)
    answer = api_client.patch(f"/api/v1/jobs/{job.pk}/", {"alert_on_warn": False}, format="json")
    assert answer.status_code == 200 and answer.json()["alert_on_warn"] is False
    assert api_client.patch(f"/api/v1/jobs/{job.pk}/", {"alert_on_warn": "maybe"}, format="json").json()["field"] == (
        "alert_on_warn"
    )


def test_the_page_shows_a_new_targets_secret_once(client, operator, dbt_projects_dir):
    client.force_login(operator)
    form = {"target-project": "sleepy", "target-emails": "team@example.com", "target-on_failure": "on"}
    assert client.post("/runs/notifications/", form).status_code == 302
    secret = NotificationTarget.objects.get().secret
    assert secret in client.get("/runs/notifications/").content.decode()
    assert secret not in client.get("/runs/notifications/").content.decode()


# --- the API ---------------------------------------------------------------------------------


def test_the_secret_is_answered_by_the_create_only(api_client, operator, webhook, verify, dbt_projects_dir):
    hook, url = webhook
    api_client.force_authenticate(operator)
    created = api_client.post(API, {"project": "sleepy", "webhook_url": url, "secret": KNOWN_SECRET}, format="json")
    assert created.status_code == 201 and created.json()["secret"] == KNOWN_SECRET
    other = api_client.post(API, {"emails": "team@example.com"}, format="json").json()
    generated = other["secret"]
    assert len(generated) >= 40 and NotificationTarget.objects.get(pk=other["id"]).secret == generated
    reads = [api_client.get(API), api_client.get(f"{API}{created.json()['id']}/")]
    changed = api_client.patch(f"{API}{created.json()['id']}/", {"secret": "z" * 20}, format="json")
    for answer in [*reads, changed]:
        assert answer.status_code == 200
        text = answer.content.decode()
        assert '"secret"' not in text and KNOWN_SECRET not in text and generated not in text
    assert notify_run(finished_run().pk) == 2  # the webhook and the email
    assert len(hook.raw) == 1 and verify("z" * 20, hook.headers[0], hook.raw[0])


def test_viewers_read_masked_webhooks_and_only_managers_write(api_client, viewer, operator, nobody):
    secret_url = "http://127.0.0.1:9/hooks/very-secret-token"
    target = create_target(actor=operator, source="web", webhook_url=secret_url)
    api_client.force_authenticate(viewer)
    listed = api_client.get(API)
    assert listed.status_code == 200
    assert [t["webhook_url"] for t in listed.json()["results"]] == ["http://127.0.0.1…"]
    assert "very-secret-token" not in api_client.get(f"{API}{target.pk}/").content.decode()
    for answer in (
        api_client.post(API, {"emails": "team@example.com"}, format="json"),
        api_client.patch(f"{API}{target.pk}/", {"enabled": False}, format="json"),
        api_client.delete(f"{API}{target.pk}/"),
    ):
        assert answer.status_code == 403 and answer.json()["code"] == "permission_denied"
    assert NotificationTarget.objects.filter(enabled=True).count() == 1
    api_client.force_authenticate(nobody)
    assert api_client.get(API).status_code == 403
    api_client.force_authenticate(operator)
    assert api_client.get(API).json()["results"][0]["webhook_url"] == secret_url


@pytest.mark.parametrize(
    "body, field",
    [
        ({"emails": "team@example.com, not an address"}, "emails"),
        ({"emails": ""}, "emails"),
        ({"webhook_url": "http://10.1.2.3/hook"}, "webhook_url"),
        ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        ({"emails": "team@example.com", "secret": "too-short"}, "secret"),
        ({"emails": "team@example.com", "project": "no_such_project"}, "project"),
        ({"emails": "team@example.com", "job": 999999}, "job"),
        ({"emails": "team@example.com", "on_failure": False}, "on_failure"),
        ({"emails": "team@example.com", "on_success": "sometimes"}, "on_success"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_nothing_is_saved(api_client, operator, dbt_projects_dir, body, field):
    api_client.force_authenticate(operator)
    answer = api_client.post(API, body, format="json")
    assert answer.status_code == 400 and answer.json()["field"] == field
    assert not NotificationTarget.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="notification.").exists()


def test_a_bad_update_is_400_and_changes_nothing(api_client, operator):
    target = create_target(actor=operator, source="web", emails="team@example.com", secret=KNOWN_SECRET)
    api_client.force_authenticate(operator)
    for body, field in (({"emails": "", "webhook_url": ""}, "emails"), ({"secret": "short"}, "secret")):
        answer = api_client.patch(f"{API}{target.pk}/", body, format="json")
        assert answer.status_code == 400 and answer.json()["field"] == field
    target.refresh_from_db()
    assert (target.emails, target.secret) == ("team@example.com", KNOWN_SECRET)
    assert not AuditEvent.objects.filter(action="notification.update").exists()


def test_creates_updates_and_deletes_are_audited_without_the_secret(api_client, operator, dbt_projects_dir):
    api_client.force_authenticate(operator)
    body = {"project": "sleepy", "emails": "team@example.com", "secret": KNOWN_SECRET}
    target_id = api_client.post(API, body, format="json").json()["id"]
    new_secret = "the-rotated-secret-0123456789"
    patch = {"emails": "oncall@example.com", "on_success": True, "secret": new_secret}
    assert api_client.patch(f"{API}{target_id}/", patch, format="json").status_code == 200
    assert api_client.delete(f"{API}{target_id}/").status_code == 204
    events = AuditEvent.objects.filter(target_id=str(target_id)).order_by("id")
    assert [(e.action, e.source, e.actor_username) for e in events] == [
        ("notification.create", "api", "otto_operator"),
        ("notification.update", "api", "otto_operator"),
        ("notification.delete", "api", "otto_operator"),
    ]
    update = events[1]
    assert update.before == {"emails": "team@example.com", "on_success": False, "secret": "(previous secret)"}
    assert update.after == {"emails": "oncall@example.com", "on_success": True, "secret": "(new secret)"}
    logged = str([(e.before, e.after) for e in events])
    assert KNOWN_SECRET not in logged and new_secret not in logged
    assert not NotificationTarget.objects.exists()
