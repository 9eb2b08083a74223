"""Repeated failed logins: django-axes locks the username+address pair out, and the audit
gets one row per burst, never what was typed unless it names an existing user."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_repeated_failures_lock_the_login_out(client, admin_user, url):
    statuses = [
        client.post(url, {"username": admin_user.username, "password": "guess"}).status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the form again, then locked
    response = client.post(url, {"username": admin_user.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "too many login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/audit/").status_code == 302  # not logged in


def test_a_burst_of_failures_is_one_audit_row(client, viewer):
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        client.post("/login/", {"username": viewer.username, "password": "guess"})
    rows = AuditEvent.objects.filter(action="auth.login_failed")
    assert [(r.target_id, r.after["username"]) for r in rows] == [(viewer.username, viewer.username)]


def test_a_failed_login_never_stores_an_unknown_username_verbatim(client, viewer):
    client.post("/login/", {"username": "hunter2-secret-pass", "password": "x"})
    event = AuditEvent.objects.get(action="auth.login_failed")
    stored = f"{event.target_id} {event.after}"
    assert "hunter2" not in stored and "secret-pass" not in stored
    assert event.target_id == "h… (19 characters, no such user)"
    client.force_login(viewer)
    assert "hunter2" not in client.get("/audit/").content.decode()


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_the_lockout_is_a_portal_page_saying_when_to_try_again(client, viewer, url, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        response = client.post(url, {"username": viewer.username, "password": "guess"})
    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "<title>Login locked · Transformation Portal</title>" in page
    last_attempt = AccessAttempt.objects.get(username=viewer.username).attempt_time
    again = timezone.localtime(last_attempt + settings.AXES_COOLOFF_TIME)
    assert f"Try again after {again:%H:%M} ({again.tzname()})" in page
    assert f"{settings.LOGIN_LOCKOUT_MINUTES} minutes after the last attempt" in page
    assert f'href="{url}">Back to the login page' in page
