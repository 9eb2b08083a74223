"""The Django admin: the admin role cannot raise privileges, django-q2 is not offered, and
every model the admin can write is audited."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts.models import ApiToken
from audit.admin import AuditedAdminMixin
from audit.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def user_form(user: User, **extra) -> dict:
    return {
        "username": user.username,
        "email": user.email,
        "is_active": "on",
        "groups": [g.pk for g in user.groups.all()],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
        **extra,
    }


def test_admin_role_cannot_make_itself_or_others_superuser_or_staff(client, admin_user, viewer):
    client.force_login(admin_user)
    for target in (admin_user, viewer):
        permission = Permission.objects.get(codename="administer")
        form = user_form(target, is_superuser="on", is_staff="on", user_permissions=[permission.pk])
        response = client.post(f"/admin/auth/user/{target.pk}/change/", form)
        assert response.status_code == 302, response.content.decode()[:2000]
        target.refresh_from_db()
        assert not target.is_superuser
        assert target.is_staff == (target == admin_user)
        assert not target.user_permissions.exists()


def test_admin_role_cannot_edit_a_roles_permissions(client, admin_user):
    client.force_login(admin_user)
    viewer_group = Group.objects.get(name="viewer")
    before = set(viewer_group.permissions.values_list("codename", flat=True))
    everything = list(Permission.objects.values_list("pk", flat=True))
    response = client.post(
        f"/admin/auth/group/{viewer_group.pk}/change/", {"name": "viewer", "permissions": everything}
    )
    assert response.status_code == 302
    assert set(viewer_group.permissions.values_list("codename", flat=True)) == before
    client.post("/admin/auth/group/add/", {"name": "everything", "permissions": everything})
    assert not Group.objects.get(name="everything").permissions.exists()


def test_admin_role_cannot_take_over_a_superuser(client, admin_user):
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(admin_user)
    response = client.post(
        f"/admin/auth/user/{root.pk}/password/", {"password1": "new-pass-12345!", "password2": "new-pass-12345!"}
    )
    assert response.status_code == 403
    assert client.post(f"/admin/auth/user/{root.pk}/delete/", {"post": "yes"}).status_code == 403
    root.refresh_from_db()
    assert root.check_password(PASSWORD)


def test_superuser_grants_staff_and_it_is_audited(client, admin_user, viewer):
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(root)
    response = client.post(f"/admin/auth/user/{viewer.pk}/change/", user_form(viewer, is_staff="on"))
    assert response.status_code == 302
    viewer.refresh_from_db()
    assert viewer.is_staff
    event = AuditEvent.objects.get(action="auth.user.update", target_id=str(viewer.pk))
    assert (event.actor_username, event.before["is_staff"], event.after["is_staff"]) == ("root", False, True)


def test_django_q_is_not_in_the_admin_even_for_superusers(client):
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(root)
    assert client.get("/admin/django_q/schedule/").status_code == 404
    assert client.get("/admin/django_q/ormq/").status_code == 404
    assert "django_q" not in client.get("/admin/").content.decode()


def test_every_model_the_admin_can_write_is_audited(rf):
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    request = rf.get("/admin/")
    request.user = root
    unaudited = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, AuditedAdminMixin)
        and (
            model_admin.has_add_permission(request)
            or model_admin.has_change_permission(request)
            or model_admin.has_delete_permission(request)
        )
    ]
    assert unaudited == []


def test_revoked_token_cannot_be_revived(client, admin_user, viewer):
    token, _ = ApiToken.issue(viewer, "ci", 5)
    token.revoked_at = timezone.now()
    token.save()
    client.force_login(admin_user)
    client.post(
        f"/admin/accounts/apitoken/{token.pk}/change/",
        {
            "name": "ci",
            "expires_at_0": "2030-01-01",
            "expires_at_1": "00:00:00",
            "revoked_at_0": "",
            "revoked_at_1": "",
        },  # noqa: E501
    )
    token.refresh_from_db()
    assert token.revoked_at is not None and not token.is_usable
    with pytest.raises(DatabaseError, match="revocation is final"), transaction.atomic():
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=None)
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None


def test_read_only_staff_cannot_probe_secrets_through_the_admins_filters(client, viewer, admin_user):
    """The admin's list takes lookups from the query string; the result count would read a
    write-only secret or a masked webhook a character at a time. Only the list's own filters go."""
    from runs.notifications import create_target

    target = create_target(actor=admin_user, source="web", webhook_url="http://127.0.0.1:9/T0/secret-path")
    viewer.is_staff = True
    viewer.save()
    client.force_login(viewer)
    listing = "/admin/runs/notificationtarget/"
    assert client.get(listing).status_code == 200
    for probe in (f"secret__startswith={target.secret[:1]}", "webhook_url__startswith=http://127.0.0.1:9/T0"):
        assert client.get(f"{listing}?{probe}").status_code == 400, probe
    assert client.get("/admin/runs/environment/?env_vars__has_key=DBT_VAR_X").status_code == 400
    assert client.get("/admin/runs/run/?state__exact=success").status_code == 200  # a listed filter still works
