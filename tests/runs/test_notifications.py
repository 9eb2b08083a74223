"""Notifications: who hears about which runs (on failure, on success, on recovery), email
and webhooks with retries, and webhook safety: secrets masked below operator, internal
addresses refused (at save and at send time), redirects not followed. DNS is the outside
world here: tests that need a name resolved patch getaddrinfo; everything else is real (the
far end is a local HTTP server, mail Django's outbox)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from runs import notifications
from runs.jobs import create_job
from runs.models import NotificationDelivery, NotificationTarget, Run, RunState
from runs.notifications import create_target, enqueue_notifications, notify_run

pytestmark = pytest.mark.django_db


def failed_run(project="sleepy", state=RunState.FAILED, job=None, minutes_ago=0) -> Run:
    when = timezone.now() - timedelta(minutes=minutes_ago)
    return Run.objects.create(
        project=project, command="build", timeout_seconds=60, source="api", state=state, job=job,
        reason="1 node(s) failed: broken", queued_at=when, started_at=when, finished_at=when,
    )  # fmt: skip


SECRET = "https://hooks.slack.com/services/T000/B000/very-secret-token"


def resolving(monkeypatch, answers: dict[str, str]) -> None:
    """DNS answers for names the test uses; other names go to the real resolver."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(notifications.socket, "getaddrinfo", getaddrinfo)


def test_viewer_sees_webhooks_masked_and_operator_sees_them_whole(client, viewer, operator, monkeypatch):
    resolving(monkeypatch, {"hooks.slack.com": "52.1.2.3"})
    target = create_target(actor=operator, source="web", webhook_url=SECRET)
    NotificationDelivery.objects.create(
        run=failed_run(), target=target, channel="webhook", destination=SECRET, status="failed", error="HTTP 500"
    )
    client.force_login(viewer)
    page = client.get("/runs/notifications/").content.decode()
    assert "very-secret-token" not in page and "https://hooks.slack.com…" in page
    audit_page = client.get("/audit/", {"action": "notification."}).content.decode()
    assert "very-secret-token" not in audit_page
    assert "very-secret-token" not in str(AuditEvent.objects.get(action="notification.create").after)
    client.force_login(operator)
    assert SECRET in client.get("/runs/notifications/").content.decode()


def test_read_only_staff_see_webhooks_masked_in_the_django_admin(client, viewer, admin_user, monkeypatch):
    resolving(monkeypatch, {"hooks.slack.com": "52.1.2.3"})
    target = create_target(actor=admin_user, source="web", webhook_url=SECRET)
    delivery = NotificationDelivery.objects.create(
        run=failed_run(), target=target, channel="webhook", destination=SECRET, status="failed", error="HTTP 500"
    )
    viewer.is_staff = True
    viewer.save()
    client.force_login(viewer)
    pages = [
        "/admin/runs/notificationtarget/",
        f"/admin/runs/notificationtarget/{target.pk}/change/",
        "/admin/runs/notificationdelivery/",
        f"/admin/runs/notificationdelivery/{delivery.pk}/change/",
    ]
    for url in pages:
        response = client.get(url)
        page = response.content.decode()
        assert response.status_code == 200, url
        assert "very-secret-token" not in page and "https://hooks.slack.com…" in page, url
    client.force_login(admin_user)  # who may manage targets sees them whole, as on the portal's pages
    assert SECRET in client.get(f"/admin/runs/notificationtarget/{target.pk}/change/").content.decode()


@pytest.mark.parametrize(
    "url, address",
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://10.1.2.3/hook", "10.1.2.3"),
        ("https://192.168.0.7:8443/hook", "192.168.0.7"),
        ("http://localhost:8000/admin/", "127.0.0.1"),
        ("http://[::1]:9000/hook", "::1"),
        ("http://0.0.0.0/hook", "0.0.0.0"),  # noqa: S104 - the address refused
        ("http://[64:ff9b::a9fe:a9fe]/hook", "64:ff9b::a9fe:a9fe"),  # NAT64 of 169.254.169.254
        ("http://[2002:a00:1::]/hook", "2002:a00:1::"),  # 6to4 of 10.0.0.1
        ("http://[::127.0.0.1]/hook", "::127.0.0.1"),
    ],
)
def test_operator_cannot_aim_a_webhook_at_an_internal_address(client, operator, url, address):
    client.force_login(operator)
    response = client.post("/runs/notifications/", {"target-project": "", "target-webhook_url": url})
    page = response.content.decode()
    assert response.status_code == 400
    assert f"resolves to {address}, a loopback, private or link-local address" in page
    assert "WEBHOOK_ALLOWED_HOSTS" in page
    assert not NotificationTarget.objects.exists()
    assert not AuditEvent.objects.filter(action="notification.create").exists()


def test_a_host_that_turns_internal_after_saving_is_refused_at_send_time(operator, webhook, monkeypatch):
    hook, url = webhook
    resolving(monkeypatch, {"hooks.example.com": "52.1.2.3"})
    create_target(actor=operator, source="web", webhook_url=url.replace("127.0.0.1", "hooks.example.com"))
    resolving(monkeypatch, {"hooks.example.com": "127.0.0.1"})  # DNS rebinding
    assert notify_run(failed_run().pk) == 0
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == "failed" and delivery.response_status is None
    assert "resolves to 127.0.0.1" in delivery.error
    assert hook.received == []


def test_an_allowed_host_is_posted_to_the_address_that_was_checked(operator, webhook, monkeypatch, settings):
    hook, url = webhook
    settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.internal"]
    resolving(monkeypatch, {"hooks.internal": "127.0.0.1"})
    named = url.replace("127.0.0.1", "hooks.internal")
    create_target(actor=operator, source="web", webhook_url=named)
    assert notify_run(failed_run().pk) == 1
    assert hook.hosts == [named.split("/")[2]]


def test_redirects_are_not_followed_and_only_the_status_is_kept(client, operator, webhook):
    hook, url = webhook
    hook.statuses = [302]
    create_target(actor=operator, source="web", webhook_url=url)
    assert notify_run(failed_run().pk) == 0
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 1, 302)
    assert hook.fetched == [] and len(hook.received) == 1
    client.force_login(operator)
    page = client.get("/runs/notifications/").content.decode()
    assert "redirects are not followed" in page
    assert "internal answer" not in page and "internal-secret" not in page


def test_failed_run_emails_and_posts_the_webhook(operator, webhook, settings):
    hook, url = webhook
    create_target(actor=operator, source="web", project="sleepy", emails="team@example.com", webhook_url=url)
    create_target(actor=operator, source="web", project="other", emails="other@example.com")
    run = failed_run()
    assert notify_run(run.pk) == 2
    assert [m.to for m in mail.outbox] == [["team@example.com"]]
    assert "failed" in mail.outbox[0].subject and f"/runs/{run.pk}/" in mail.outbox[0].body
    assert hook.received[0]["run_id"] == run.pk and hook.received[0]["state"] == "failed"
    deliveries = set(NotificationDelivery.objects.values_list("channel", "status"))
    assert deliveries == {("email", "sent"), ("webhook", "sent")}
    assert AuditEvent.objects.filter(action="notification.create").count() == 2


def test_webhook_failures_are_retried_and_recorded(operator, webhook):
    hook, url = webhook
    hook.statuses = [503]
    create_target(actor=operator, source="web", webhook_url=url)
    notify_run(failed_run().pk)
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == "failed" and delivery.attempts == 3 and delivery.response_status == 503
    assert len(hook.received) == 3


def test_webhook_that_recovers_is_delivered_on_a_later_attempt(operator, webhook):
    hook, url = webhook
    hook.statuses = [502, 200]
    create_target(actor=operator, source="web", webhook_url=url)
    run = failed_run()
    assert notify_run(run.pk) == 1
    delivery = NotificationDelivery.objects.get()
    assert delivery.status == "sent" and delivery.attempts == 2 and delivery.response_status == 200
    assert [body["run_id"] for body in hook.received] == [run.pk, run.pk]


class Trickler:
    """A webhook receiver that reads the POST, then answers one byte at a time, each well within
    the read timeout, for up to `seconds` (a response whose headers never end)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.connections = 0
        self.hung_up_early = threading.Event()  # the client closed before the trickle ended
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                ends = time.monotonic() + self.seconds
                try:
                    while time.monotonic() < ends:
                        conn.sendall(b"z")
                        time.sleep(0.2)
                except OSError:
                    self.hung_up_early.set()


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    server = Trickler(seconds=30)
    yield server
    server.listener.close()


def test_a_receiver_that_trickles_bytes_is_given_up_at_the_delivery_deadline(operator, trickler, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1  # each read gets a byte well within it
    settings.WEBHOOK_DEADLINE_SECONDS = 2
    create_target(actor=operator, source="web", webhook_url=trickler.url)
    assert notify_run(failed_run().pk) == 0
    delivery = NotificationDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("failed", 1, None)
    assert delivery.error == "no answer within the delivery deadline (WEBHOOK_DEADLINE_SECONDS=2)"
    assert trickler.hung_up_early.wait(10) and trickler.connections == 1


@pytest.mark.parametrize("state, words", [(RunState.ERROR, "error"), (RunState.TIMED_OUT, "timed out")])
def test_error_and_timed_out_runs_email_too(operator, state, words):
    create_target(actor=operator, source="web", project="sleepy", emails="team@example.com")
    assert notify_run(failed_run(state=state).pk) == 1
    assert mail.outbox[0].subject.endswith(f"sleepy {words}")
    assert NotificationDelivery.objects.get().destination == "team@example.com"


@pytest.mark.parametrize(
    "state, notified",
    [
        (RunState.FAILED, True),
        (RunState.ERROR, True),
        (RunState.TIMED_OUT, True),
        (RunState.SUCCESS, True),  # for targets on success or recovery; notify_run picks them
        (RunState.CANCELLED, False),
        (RunState.SKIPPED, False),
    ],
)
def test_which_final_states_send_notifications(queued, state, notified):
    enqueue_notifications(failed_run(state=state))
    assert queued() == (["runs.notifications.notify_run"] if notified else [])


def test_manager_adds_a_target_on_the_page_and_it_needs_a_destination(client, operator, dbt_projects_dir):
    client.force_login(operator)
    response = client.post("/runs/notifications/", {"target-project": "sleepy", "target-emails": ""})
    assert response.status_code == 400 and "at least one email address or a webhook" in response.content.decode()
    form = {"target-project": "sleepy", "target-emails": "team@example.com", "target-on_success": "on"}
    assert client.post("/runs/notifications/", form).status_code == 302
    target = NotificationTarget.objects.get()
    assert (target.on_failure, target.on_success, target.on_recovery) == (False, True, False)
    assert "team@example.com" in client.get("/runs/notifications/").content.decode()


def test_success_notices_go_only_to_targets_that_asked(operator):
    create_target(actor=operator, source="web", project="sleepy", emails="failures@example.com")
    create_target(actor=operator, source="web", project="sleepy", emails="news@example.com", on_success=True)
    assert notify_run(failed_run(state=RunState.SUCCESS).pk) == 1
    assert [m.to for m in mail.outbox] == [["news@example.com"]]


def test_a_recovery_is_announced_once_after_a_failure_of_the_same_job(operator, dbt_projects_dir):
    job = create_job(actor=operator, source="web", project="sleepy", name="nightly", steps=["dbt ls"])
    other = create_job(actor=operator, source="web", project="sleepy", name="other", steps=["dbt ls"])
    create_target(
        actor=operator, source="web", project="sleepy", emails="oncall@example.com", on_failure=False, on_recovery=True
    )
    failed_run(job=job, minutes_ago=30)
    failed_run(job=other, state=RunState.SUCCESS, minutes_ago=20)  # another job's success recovers nothing
    recovered = failed_run(job=job, state=RunState.SUCCESS, minutes_ago=10)
    again = failed_run(job=job, state=RunState.SUCCESS)
    assert [notify_run(run.pk) for run in (recovered, again)] == [1, 0]
    assert [m.to for m in mail.outbox] == [["oncall@example.com"]]
    assert list(NotificationDelivery.objects.values_list("run_id", flat=True)) == [recovered.pk]
