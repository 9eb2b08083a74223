"""Webhook safety: secrets masked below operator, internal addresses refused (at save and at
send time), redirects not followed. DNS is the outside world here: tests that need a name
resolved patch getaddrinfo; everything else is real (the far end is a local HTTP server)."""

from __future__ import annotations

import socket

import pytest

from audit.models import AuditEvent
from runs import notifications
from runs.models import NotificationDelivery, NotificationTarget
from runs.notifications import create_target, notify_run
from tests.runs.test_schedules import failed_run

pytestmark = pytest.mark.django_db

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
    page = client.get("/runs/schedules/").content.decode()
    assert "very-secret-token" not in page and "https://hooks.slack.com…" in page
    audit_page = client.get("/audit/", {"action": "notification."}).content.decode()
    assert "very-secret-token" not in audit_page
    assert "very-secret-token" not in str(AuditEvent.objects.get(action="notification.create").after)
    client.force_login(operator)
    assert SECRET in client.get("/runs/schedules/").content.decode()


@pytest.mark.parametrize(
    "url, address",
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://10.1.2.3/hook", "10.1.2.3"),
        ("https://192.168.0.7:8443/hook", "192.168.0.7"),
        ("http://localhost:8000/admin/", "127.0.0.1"),
        ("http://[::1]:9000/hook", "::1"),
        ("http://0.0.0.0/hook", "0.0.0.0"),  # noqa: S104 - the address refused
    ],
)
def test_operator_cannot_aim_a_webhook_at_an_internal_address(client, operator, url, address):
    client.force_login(operator)
    response = client.post("/runs/schedules/", {"target-project": "", "target-webhook_url": url})
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
    page = client.get("/runs/schedules/").content.decode()
    assert "redirects are not followed" in page
    assert "internal answer" not in page and "internal-secret" not in page
