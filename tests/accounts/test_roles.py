from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.permissions import DenyAll

pytestmark = pytest.mark.django_db

NAV_LINKS = {  # link text -> roles that must see it
    "Trigger run": {"operator", "admin"},
    "Jobs": {"viewer", "operator", "approver", "admin"},
    "Notifications": {"operator", "admin"},
    "Approvals": {"approver", "admin"},
    "Admin": {"admin"},
    "Audit": {"viewer", "operator", "approver", "admin"},
}


@pytest.mark.parametrize("role", ["viewer", "operator", "approver", "admin_user"])
def test_navigation_shows_what_the_role_may_do(client, request, role):
    user = request.getfixturevalue(role)
    client.force_login(user)
    html = client.get("/").content.decode()
    group = user.groups.get().name
    for link, allowed in NAV_LINKS.items():
        assert (f">{link}</a>" in html) == (group in allowed), f"{group} / {link}"


def test_anonymous_is_sent_to_login(client):
    response = client.get("/audit/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/audit/")


def test_user_without_role_is_refused(client, nobody):
    client.force_login(nobody)
    assert client.get("/audit/").status_code == 403


def test_django_admin_is_for_admins_only(client, operator, admin_user):
    client.force_login(operator)
    assert client.get("/admin/").status_code == 302  # not staff: admin login page
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            if str(p.pattern).startswith("admin/"):
                continue  # Django admin has its own staff + model permission checks
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.callback


PUBLIC = {"login/", "logout/", "healthz", "readyz"}  # probes carry no session or token
# Prometheus carries no session either: METRICS_ALLOWED_IPS or METRICS_TOKEN (tests/operations/test_metrics.py).
BY_ADDRESS_OR_TOKEN = {"metrics"}
# The git hosts' webhooks carry the project's secret instead (tests/runs/test_git_projects.py).
BY_SIGNATURE = {"hooks/git/<str:project>/github/", "hooks/git/<str:project>/gitlab/"}


def test_every_url_declares_its_permission():
    for route, view in _walk(get_resolver().url_patterns):
        if route in PUBLIC | BY_ADDRESS_OR_TOKEN | BY_SIGNATURE:
            continue
        cls = getattr(view, "cls", None)
        if cls is not None:  # DRF view: explicit permission classes, never the deny-all default
            classes = getattr(view, "initkwargs", {}).get("permission_classes") or cls.permission_classes
            assert classes and DenyAll not in classes, f"{route} has no declared API permission"
            if "schema" in route or "docs" in route:
                continue
        else:
            assert hasattr(view, "required_capability"), f"{route} does not declare its permission"


def test_user_without_role_is_told_to_ask_an_admin(client, nobody):
    client.force_login(nobody)
    response = client.get("/")
    assert response.status_code == 403
    assert "has no role yet" in response.content.decode()


def test_refused_action_says_what_the_role_may_not_do(client, viewer):
    client.force_login(viewer)
    response = client.get("/runs/new/")
    assert response.status_code == 403
    assert "Your role may not do this (trigger and cancel runs, refresh entities)." in response.content.decode()


def test_the_roles_migration_creates_the_live_roles():
    """The data migration holds its own copy of the role table (migrations never import
    live code); a change to the roles must come with a migration that brings it along."""
    import importlib

    from accounts.models import ROLE_CAPABILITIES, Capability
    from accounts.roles import ADMIN_MODEL_PERMISSIONS

    migration = importlib.import_module("accounts.migrations.0002_roles")
    assert dict(Capability.choices) == migration.CAPABILITIES
    assert {role: set(caps) for role, caps in migration.ROLE_CAPABILITIES.items()} == ROLE_CAPABILITIES
    assert migration.ADMIN_MODEL_PERMISSIONS == ADMIN_MODEL_PERMISSIONS
