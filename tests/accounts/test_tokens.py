from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from accounts.authentication import BadTokenThrottle
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


ROOT = Path(__file__).resolve().parents[2]
VICTIM, ATTACKER = "203.0.113.7", "198.51.100.9"


@pytest.fixture
def bad_token_limit(settings) -> int:
    """The throttle's limit per minute, with the counts of this test's addresses forgotten
    before and after (the shared cache outlives a test's transaction; with Redis it is the
    broker's database, so it is never cleared whole)."""
    keys = [BadTokenThrottle.cache_format % {"scope": "bad_token", "ident": a} for a in ("127.0.0.1", VICTIM, ATTACKER)]
    cache.delete_many(keys)
    yield int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["bad_token"].split("/")[0])
    cache.delete_many(keys)


def guesses(api_client, count: int, **meta: str) -> list[int]:
    return [
        api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer tp_guess{i}", **meta).status_code
        for i in range(count)
    ]


def test_a_burst_of_bad_tokens_is_throttled_and_a_valid_token_still_works(api_client, viewer, bad_token_limit):
    good = issue(viewer.username)
    assert guesses(api_client, bad_token_limit + 1) == [401] * bad_token_limit + [429]
    refused = api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION="Bearer tp_one_more")
    assert refused.status_code == 429 and refused.json()["code"] == "throttled"
    assert api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {good}").status_code == 200


def test_rotating_x_forwarded_for_straight_to_the_app_is_still_throttled(api_client, bad_token_limit):
    statuses = [
        api_client.get(
            "/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer tp_guess{i}", HTTP_X_FORWARDED_FOR=f"10.9.{i}.1"
        ).status_code
        for i in range(bad_token_limit + 1)
    ]
    assert statuses == [401] * bad_token_limit + [429]


def test_behind_the_proxy_the_address_it_adds_is_counted_not_what_the_client_wrote(
    api_client, bad_token_limit, settings
):
    settings.TRUSTED_PROXY_COUNT = 1  # nginx sets X-Forwarded-For to the address it sees
    spoofed = [f"10.9.{i}.1, {ATTACKER}" for i in range(bad_token_limit + 1)]
    statuses = [
        api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION="Bearer tp_guess", HTTP_X_FORWARDED_FOR=chain).status_code
        for chain in spoofed
    ]
    assert statuses == [401] * bad_token_limit + [429]
    victim = api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION="Bearer tp_typo", HTTP_X_FORWARDED_FOR=VICTIM)
    assert victim.status_code == 401  # its own count, not the attacker's


def test_spoofing_a_victims_address_never_locks_out_its_valid_token(api_client, viewer, bad_token_limit):
    good = issue(viewer.username)
    spoofed = {"REMOTE_ADDR": ATTACKER, "HTTP_X_FORWARDED_FOR": VICTIM}
    assert guesses(api_client, bad_token_limit + 1, **spoofed)[-1] == 429
    answer = api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {good}", REMOTE_ADDR=VICTIM)
    assert answer.status_code == 200
    assert api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION="Bearer tp_typo", REMOTE_ADDR=VICTIM).status_code == 401


@pytest.mark.services  # the shared cache: Redis with REDIS_URL, else the database's table
def test_every_web_process_shares_the_count(transactional_db, api_client, viewer, bad_token_limit):
    """The failures counted here refuse the next guess in another process (a second web
    process of the same installation): the count lives in the shared cache, not in memory."""
    assert guesses(api_client, bad_token_limit) == [401] * bad_token_limit
    good = issue(viewer.username)
    code = (
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        "from django.test import Client\n"
        "client = Client()\n"
        "print(client.get('/api/v1/audit/', HTTP_AUTHORIZATION='Bearer tp_elsewhere').status_code)\n"
        f"print(client.get('/api/v1/audit/', HTTP_AUTHORIZATION='Bearer {good}').status_code)\n"
    )
    env = {**os.environ, "DATABASE_NAME": connection.settings_dict["NAME"]}
    other = subprocess.run(
        [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert other.returncode == 0, other.stderr[-3000:]
    assert other.stdout.split() == ["429", "200"]
