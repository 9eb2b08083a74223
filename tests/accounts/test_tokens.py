from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from accounts.models import ApiToken
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def issue(username: str, *args: str) -> str:
    out = StringIO()
    call_command("issue_token", username, *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_issued_token_authenticates_as_its_owner(api_client, viewer):
    token = issue(viewer.username)
    response = api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert "results" in response.json()


def test_token_is_stored_hashed_never_in_plaintext(viewer):
    token = issue(viewer.username, "--days", "5")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert token not in stored
    assert token[10:] not in stored  # not even the secret part


def test_expired_and_revoked_tokens_are_refused(api_client, viewer):
    expired, revoked = issue(viewer.username), issue(viewer.username)
    ApiToken.objects.filter(prefix=expired[:10]).update(expires_at=timezone.now() - timedelta(seconds=1))
    ApiToken.objects.filter(prefix=revoked[:10]).update(revoked_at=timezone.now())
    for token in (expired, revoked, "tp_not-a-real-token"):
        response = api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401
        assert "Invalid, expired or revoked" in response.json()["detail"]


def test_token_carries_no_more_than_its_owners_rights(api_client, nobody):
    token = issue(nobody.username)
    response = api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403


def test_api_refuses_anonymous_requests(api_client):
    assert api_client.get("/api/v1/audit/").status_code in (401, 403)
    assert api_client.get("/api/v1/schema/").status_code in (401, 403)


def test_issue_token_rejects_unknown_user_and_bad_days(viewer):
    with pytest.raises(CommandError, match="no active user"):
        issue("ghost")
    with pytest.raises(CommandError, match="--days"):
        issue(viewer.username, "--days", "0")
    assert ApiToken.objects.count() == 0


def test_openapi_schema_and_docs_served_locally(client, viewer):
    client.force_login(viewer)
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200 and "/api/v1/audit/" in schema.content.decode()
    docs = client.get("/api/v1/docs/").content.decode()
    # Every script, stylesheet and icon comes from our own static files (no CDN, works
    # offline) but the init script, served by the page's own URL: nothing inline (the CSP).
    assets = re.findall(r'(?:src|href)\s*=\s*"([^"]+)"', docs)
    assert any("swagger-ui-bundle" in a for a in assets), assets
    assert [a for a in assets if not a.startswith("/static/")] == ["/api/v1/docs/?script="]
    assert not re.search(r"https?://", docs)
    assert "<style" not in docs and not re.search(r"<script>", docs)
    init = client.get("/api/v1/docs/?script=")
    assert init.status_code == 200 and init["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in init.content.decode()


def test_password_change_revokes_the_tokens_issued_before_it(api_client, client, viewer, admin_user):
    token = issue(viewer.username)
    client.force_login(admin_user)  # an admin resets the password in the Django admin
    response = client.post(
        f"/admin/auth/user/{viewer.pk}/password/",
        {"password1": "a-new-long-pass-42", "password2": "a-new-long-pass-42"},
    )
    assert response.status_code == 302
    response = api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    revoked = AuditEvent.objects.get(action="accounts.apitoken.revoke")
    assert revoked.reason == "owner's password changed"
    fresh = issue(viewer.username)  # issued after the change: works
    assert api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {fresh}").status_code == 200


def test_a_burst_of_bad_tokens_is_throttled(api_client, viewer, settings):
    cache.clear()
    good = issue(viewer.username)
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["bad_token"].split("/")[0])
    statuses = [
        api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer tp_guess{i}").status_code for i in range(limit + 1)
    ]
    assert statuses == [401] * limit + [429]
    response = api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {good}")
    assert response.status_code == 429  # the address is refused until the window passes
    assert response.json()["code"] == "throttled"
    cache.clear()
    assert api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {good}").status_code == 200
