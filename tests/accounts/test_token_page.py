"""The API tokens page: each user creates (shown once), lists and revokes their own tokens;
admins see and revoke everyone's. Every change audited; tokens stay hashed."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client

from accounts.models import ApiToken
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "/account/tokens/"


def create(client: Client, name: str = "airflow", days: str = "30"):
    return client.post(URL, {"name": name, "days": days})


def shown_token(response) -> str:
    return re.search(r'data-testid="new-token">(tp_[^<]+)<', response.content.decode()).group(1)


def api_status(api_client, token: str) -> int:
    return api_client.get("/api/v1/audit/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code


@pytest.mark.parametrize("role", ["viewer", "operator", "approver", "admin_user"])
def test_each_role_creates_a_token_shown_once_that_acts_as_them(request, client, api_client, role):
    user = request.getfixturevalue(role)
    client.force_login(user)
    response = create(client, "airflow prod", "30")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0") and "no-store" in response["Cache-Control"]
    token = shown_token(response)
    assert "Copy it now: it is not shown again" in response.content.decode()
    assert api_status(api_client, token) == 200
    stored = ApiToken.objects.get(user=user)
    lifetime = stored.expires_at - stored.created_at
    assert (stored.name, stored.prefix, round(lifetime.total_seconds() / 86400)) == ("airflow prod", token[:10], 30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT digest FROM accounts_apitoken")
        assert token[10:] not in cursor.fetchone()[0]  # hashed
    event = AuditEvent.objects.get(action="accounts.apitoken.issue")
    assert (event.actor_username, event.source, event.target_id) == (user.username, "web", str(stored.pk))
    assert event.after["name"] == "airflow prod" and token not in str(event.after)
    page = client.get(URL).content.decode()
    assert "airflow prod" in page and f"{token[:10]}…" in page
    assert token not in page  # never again


def test_the_navigation_links_the_tokens_page(client, viewer):
    client.force_login(viewer)
    assert f'<a href="{URL}">API tokens</a>' in client.get("/").content.decode()


@pytest.mark.parametrize(("name", "days", "field"), [("", "30", "name"), ("x", "0", "days"), ("x", "3651", "days")])
def test_bad_input_is_a_form_error_and_changes_nothing(client, viewer, name, days, field):
    client.force_login(viewer)
    response = create(client, name, days)
    assert response.status_code == 400
    assert 'class="error" role="alert"' in response.content.decode()
    assert "new-token" not in response.content.decode()
    assert response.context["form"].errors.keys() == {field}
    assert not ApiToken.objects.exists() and not AuditEvent.objects.filter(action__startswith="accounts.").exists()


def test_a_user_revokes_their_token_and_it_stops_working(client, api_client, viewer):
    client.force_login(viewer)
    token = shown_token(create(client))
    stored = ApiToken.objects.get()
    response = client.post(f"{URL}{stored.pk}/revoke/", follow=True)
    assert response.redirect_chain == [(URL, 302)]
    page = response.content.decode()
    assert f"Token {token[:10]}… (airflow) revoked." in page and "revoked" in page
    assert api_status(api_client, token) == 401
    event = AuditEvent.objects.get(action="accounts.apitoken.revoke")
    assert (event.actor_username, event.source, event.target_id) == (viewer.username, "web", str(stored.pk))
    client.post(f"{URL}{stored.pk}/revoke/")  # again: nothing more to do, nothing audited
    assert AuditEvent.objects.filter(action="accounts.apitoken.revoke").count() == 1


def test_users_neither_see_nor_revoke_others_tokens(client, api_client, viewer, operator):
    others, plaintext = ApiToken.issue(operator, "operator's airflow", 5)
    client.force_login(viewer)
    page = client.get(URL).content.decode()
    assert others.prefix not in page and "operator&#x27;s airflow" not in page
    assert client.post(f"{URL}{others.pk}/revoke/").status_code == 404
    assert api_status(api_client, plaintext) == 200
    assert not AuditEvent.objects.filter(action="accounts.apitoken.revoke").exists()


def test_admins_see_and_revoke_every_users_tokens(client, api_client, admin_user, viewer, operator):
    viewers, _ = ApiToken.issue(viewer, "viewer's script", 5)
    operators, plaintext = ApiToken.issue(operator, "operator's airflow", 5)
    client.force_login(admin_user)
    page = client.get(URL).content.decode()
    assert "All users' tokens" in page
    for token, owner in ((viewers, viewer), (operators, operator)):
        assert token.prefix in page and owner.username in page
    response = client.post(f"{URL}{operators.pk}/revoke/")
    assert response.status_code == 302
    assert api_status(api_client, plaintext) == 401
    event = AuditEvent.objects.get(action="accounts.apitoken.revoke")
    assert (event.actor_username, event.target_id) == (admin_user.username, str(operators.pk))


def test_revoking_is_a_post_with_a_csrf_token(viewer):
    token, _ = ApiToken.issue(viewer, "script", 5)
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert client.get(f"{URL}{token.pk}/revoke/").status_code == 405
    assert client.post(f"{URL}{token.pk}/revoke/").status_code == 403
    assert client.post(URL, {"name": "x", "days": "5"}).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None and ApiToken.objects.count() == 1


def test_the_page_needs_a_login_and_a_role(client, nobody):
    assert client.get(URL)["Location"] == f"/login/?next={URL}"
    client.force_login(nobody)
    assert client.get(URL).status_code == 403
    assert create(client).status_code == 403
    assert not ApiToken.objects.exists()
