from __future__ import annotations

import csv
import html as html_module
import io
import json
import re
import threading

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.services import changed_fields, record, verify_chain
from tests.conftest import PASSWORD


@pytest.mark.django_db
def test_login_logout_and_failed_login_are_audited(client, viewer):
    client.post("/login/", {"username": viewer.username, "password": "wrong"})
    client.post("/login/", {"username": viewer.username, "password": PASSWORD})
    client.post("/logout/")
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor_username", "source"))
    assert actions == [
        ("auth.login_failed", "", "web"),
        ("auth.login", viewer.username, "web"),
        ("auth.logout", viewer.username, "web"),
    ]
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.target_id == viewer.username and "wrong" not in str(failed.after)


@pytest.mark.django_db
@pytest.mark.parametrize("statement", ["UPDATE audit_auditevent SET reason = 'x'", "DELETE FROM audit_auditevent"])
def test_database_refuses_to_change_audit_rows(statement):
    record(None, "test.event")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert AuditEvent.objects.filter(action="test.event").count() == 1


@pytest.mark.django_db
def test_database_refuses_truncate_outside_maintenance():
    record(None, "test.event")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL portal.audit_maintenance = 'off'")
        cursor.execute("TRUNCATE audit_auditevent")


def test_changed_fields_keeps_only_what_an_update_changed():
    before = {"name": "nightly", "cron": "0 3 * * *", "updated_at": "t1"}
    after = {"updated_at": "t2", "timeout": 60, "name": "nightly", "cron": "0 4 * * *"}
    assert changed_fields(before, after, ignore=("updated_at",)) == (
        {"cron": "0 3 * * *", "timeout": None},
        {"cron": "0 4 * * *", "timeout": 60},
    )
    assert list(changed_fields(before, after)[0]) == ["cron", "timeout", "updated_at"]  # key order
    assert changed_fields(before, dict(before)) == ({}, {})


@pytest.mark.django_db
def test_verify_audit_names_the_first_edited_row():
    events = [record(None, "test.event", ("thing", i), after={"n": i}) for i in range(5)]
    call_command("verify_audit")  # intact
    with connection.cursor() as cursor:  # someone with DDL rights edits history
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_no_update_delete")
        cursor.execute("UPDATE audit_auditevent SET after = '{\"n\": 99}' WHERE id = %s", [events[2].pk])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_auditevent_no_update_delete")
    with pytest.raises(CommandError, match=f"broken at event #{events[2].pk}: content"):
        call_command("verify_audit")


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_do_not_fork_the_chain():
    def writer(n: int) -> None:
        for i in range(10):
            with transaction.atomic():
                record(None, "test.concurrent", ("writer", n), after={"i": i})
        connection.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify_chain()
    assert report.ok and report.checked == 60
    assert AuditEvent.objects.values("prev_hash").distinct().count() == 60  # no two rows share a parent


@pytest.mark.django_db
def test_change_rolled_back_leaves_no_audit_row():
    with pytest.raises(RuntimeError), transaction.atomic():
        record(None, "test.rolled_back")
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.filter(action="test.rolled_back").exists()


@pytest.mark.django_db
def test_user_and_group_changes_in_django_admin_are_audited(client, admin_user, viewer):
    client.force_login(admin_user)
    operator_group = Group.objects.get(name="operator")
    response = client.post(
        f"/admin/auth/user/{viewer.pk}/change/",
        {
            "username": viewer.username,
            "email": viewer.email,
            "is_active": "on",
            "groups": [operator_group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="auth.user.update")
    assert (event.actor_username, event.source, event.target_id) == (admin_user.username, "admin", str(viewer.pk))
    assert event.before["groups"] == ["viewer"] and event.after["groups"] == ["operator"]
    assert "password" not in event.after

    client.post("/admin/auth/group/add/", {"name": "auditors", "permissions": []})
    assert AuditEvent.objects.filter(action="auth.group.create", after__name="auditors").exists()


@pytest.mark.django_db
def test_audit_page_filters_and_exports_csv(client, viewer, operator):
    record(operator, "runs.run.trigger", ("runs.run", 7), reason="nightly")
    record(viewer, "auth.login", viewer)
    client.force_login(viewer)
    page = client.get("/audit/", {"actor": operator.username}).content.decode()
    assert "runs.run.trigger" in page and "nightly" in page
    assert "auth.login</code>" not in page
    export = client.get("/audit/", {"action": "runs.", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [(r["action"], r["target_id"], r["actor_username"]) for r in rows] == [
        ("runs.run.trigger", "7", operator.username)
    ]


@pytest.mark.django_db
def test_audit_page_escapes_what_users_typed(client, viewer):
    record(viewer, "test.event", reason="<script>alert(1)</script>")
    client.force_login(viewer)
    html = client.get("/audit/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


@pytest.mark.django_db
def test_audit_api_lists_and_filters_for_viewers(api_client, viewer, nobody):
    record(viewer, "test.one")
    record(nobody, "test.two")
    api_client.force_authenticate(viewer)
    body = api_client.get("/api/v1/audit/", {"actor": nobody.username}).json()
    assert [e["action"] for e in body["results"]] == ["test.two"]
    bad = api_client.get("/api/v1/audit/", {"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["field"] == "since"
    api_client.force_authenticate(nobody)
    assert api_client.get("/api/v1/audit/").status_code == 403


@pytest.mark.django_db
def test_csv_export_neutralises_spreadsheet_formulas(client, viewer):
    for payload in ('=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        record(viewer, "test.event", ("thing", payload), reason=payload)
    record(viewer, "test.event", ("thing", "plain"), reason="a=b")
    client.force_login(viewer)
    export = client.get("/audit/", {"action": "test.", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode(), newline="")))
    assert [r["reason"] for r in rows] == [
        "'=HYPERLINK(\"http://evil.example\",\"x\")", "'+1+1", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "a=b",
    ]  # fmt: skip
    assert all(r["target_id"][0] == "'" for r in rows[:-1]) and rows[-1]["target_id"] == "plain"


def page_text(html: str) -> str:
    """What a reader sees of a page: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", "", html)).split())


@pytest.mark.django_db
def test_audit_page_names_the_target_and_shows_what_changed(client, admin_user, viewer):
    client.force_login(admin_user)
    client.post("/admin/auth/group/add/", {"name": "auditors", "permissions": []})
    group = Group.objects.get(name="auditors")
    client.post(f"/admin/auth/group/{group.pk}/change/", {"name": "reviewers", "permissions": []})
    client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    record(
        viewer,
        "test.nested",
        viewer,
        before={"options": {"DBT_A": "1", "DBT_B": "2"}, "threads": 4},
        after={"options": {"DBT_A": "3", "DBT_C": "4"}},
    )
    client.force_login(viewer)
    html = client.get("/audit/").content.decode()
    rows = {page_text(row).split(" ")[0]: page_text(row) for row in html.split("<tr>")[2:]}
    update = rows[str(AuditEvent.objects.get(action="auth.group.update").pk)]
    assert "reviewers" in update and 'name: "auditors" → "reviewers"' in update
    deleted = rows[str(AuditEvent.objects.get(action="auth.group.delete").pk)]
    assert "reviewers" in deleted and '− name: "reviewers"' in deleted  # named though the group is gone
    assert '+ name: "auditors"' in rows[str(AuditEvent.objects.get(action="auth.group.create").pk)]
    nested = rows[str(AuditEvent.objects.get(action="test.nested").pk)]
    assert viewer.username in nested
    assert 'options.DBT_A: "1" → "3"' in nested and '+ options.DBT_C: "4"' in nested
    assert '− options.DBT_B: "2"' in nested and "− threads: 4" in nested
    assert "{'name'" not in html and "{&#x27;name&#x27;" not in html  # no Python dicts
    assert verify_chain().ok


@pytest.mark.django_db
def test_audit_page_names_targets_recorded_without_a_name(client, viewer, operator):
    group = Group.objects.create(name="<b>ops</b>")
    record(operator, "test.legacy", ("auth.group", group.pk))  # a (type, id) target, as rows before names
    record(operator, "test.gone", ("auth.group", 999999))
    record(operator, "test.odd", ("auth.user", "not-a-number"))
    client.force_login(viewer)
    html = client.get("/audit/").content.decode()
    text = page_text(html)
    assert "<b>ops</b>" in text and "<b>ops</b>" not in html  # resolved, escaped
    assert "auth.group:999999" in text and "auth.user:not-a-number" in text


@pytest.mark.django_db
def test_audit_exports_carry_the_target_name(client, viewer, operator):
    record(operator, "test.named", operator, before={"a": 1}, after={"a": 2})
    client.force_login(viewer)
    export = client.get("/audit/", {"action": "test.", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert [(r["target_label"], r["before"], r["after"]) for r in rows] == [(operator.username, '{"a": 1}', '{"a": 2}')]
    export = client.get("/audit/", {"action": "test.", "format": "json"})
    (row,) = json.loads(b"".join(export.streaming_content))
    assert (row["target_type"], row["target_label"], row["after"]) == ("auth.user", operator.username, {"a": 2})


@pytest.mark.django_db
def test_a_webhook_targets_name_keeps_its_secret_path_out_of_the_audit(client, viewer, operator, settings):
    from runs.notifications import create_target

    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]  # resolves offline
    url = "https://localhost/services/T000/B000/XXXXSECRET"
    target = create_target(actor=operator, source="web", project="sleepy", webhook_url=url)
    client.force_login(viewer)
    text = page_text(client.get("/audit/").content.decode())
    assert "sleepy → https://localhost…" in text and "XXXXSECRET" not in text
    assert "XXXXSECRET" not in AuditEvent.objects.get(action="notification.create").target_label
    assert "XXXXSECRET" not in str(target)


@pytest.mark.django_db
def test_env_var_values_in_old_rows_show_masked_below_the_operator_role(client, api_client, viewer, operator):
    """Rows written before the audit kept env_vars by name only still hold their values; the
    chain keeps them, but the page, the exports and the API show them to operators only."""
    record(
        operator, "environment.update", ("runs.environment", "7"),
        before={"env_vars": {"DBT_VAR_TOKEN": "old-token-4711"}, "threads": 4},
        after={"env_vars": {"DBT_VAR_TOKEN": "new-token-4711", "DBT_VAR_REGION": "eu-4711"}, "threads": 8},
    )  # fmt: skip

    def everything(user) -> str:
        client.force_login(user)
        api_client.force_authenticate(user)
        html = client.get("/audit/", {"action": "environment."}).content.decode()
        assert 'value="environment."' in html  # the filter form keeps what was asked
        page = page_text(html)
        exports = [
            b"".join(client.get("/audit/", {"action": "environment.", "format": kind}).streaming_content).decode()
            for kind in ("csv", "json")
        ]
        api = json.dumps(api_client.get("/api/v1/audit/", {"action": "environment."}).json())
        return " ".join([page, *exports, api])

    seen = everything(viewer)
    assert "4711" not in seen
    assert "DBT_VAR_TOKEN" in seen and "DBT_VAR_REGION" in seen and "threads" in seen
    shown = everything(operator)
    assert all(value in shown for value in ("old-token-4711", "new-token-4711", "eu-4711"))
    assert verify_chain().ok  # the rows themselves unchanged
