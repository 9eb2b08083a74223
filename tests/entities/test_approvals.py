"""Four eyes: requests, approvals, rejections, the parity gate, staleness and concurrency."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from audit.models import AuditEvent, Source
from entities import services
from entities.models import EntityType, Mode, ModeChange, ModeChangeRequest, RequestStatus
from entities.refresh import write_parity_report
from kernel.errors import RequestError
from tests.entities.conftest import query
from tests.entities.helpers import failing_report, move_to, request_change

pytestmark = pytest.mark.django_db


def view_definition(conninfo: str) -> str:
    return query(conninfo, "select pg_get_viewdef('serving.users'::regclass, true)")[0][0]


def test_operator_requests_and_approver_approves_through_the_api(
    api_client, warehouse, users_entity, operator, approver
):
    api_client.force_authenticate(operator)
    response = api_client.post(
        "/api/v1/entities/users/mode-requests/", {"mode": "shadow", "reason": "compare engines"}, format="json"
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (created["from_mode"], created["mode"], created["status"]) == ("rules", "shadow", "pending")
    assert api_client.get("/api/v1/entities/users/").json()["pending_requests"][0]["id"] == created["id"]

    api_client.force_authenticate(approver)
    response = api_client.post(f"/api/v1/mode-requests/{created['id']}/approve/", {"comment": "go"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "approved"
    assert response.json()["decided_by"] == approver.username

    entity = api_client.get("/api/v1/entities/users/").json()
    assert (entity["mode"], entity["pending_requests"]) == ("shadow", [])
    assert "users_rules" in view_definition(warehouse)
    change = ModeChange.objects.get()
    assert (change.from_mode, change.to_mode, change.actor, change.request_id) == (
        "rules",
        "shadow",
        approver,
        created["id"],
    )
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor_username", "source"))
    assert actions == [
        ("entity.mode_request.create", operator.username, Source.API),
        ("entity.mode_request.approve", approver.username, Source.API),
        ("entity.mode.apply", approver.username, Source.API),
    ]


def test_canary_serves_dbt_for_part_of_the_keys(warehouse, users_entity, operator, approver):
    move_to(users_entity, operator, approver, "shadow")
    move_to(users_entity, operator, approver, "canary", 40)
    definition = view_definition(warehouse)
    assert "users_dbt" in definition and "users_rules" in definition and "< 4000" in definition
    assert query(warehouse, "select count(*) from serving.users")[0][0] == 106
    move_to(users_entity, operator, approver, "dbt")
    assert "users_rules" not in view_definition(warehouse)
    assert users_entity.mode_changes.count() == 3


def test_self_approval_is_refused_by_api_page_admin_and_database(
    api_client, client, warehouse, users_entity, admin_user, approver
):
    own = request_change(users_entity, admin_user, "shadow")

    api_client.force_authenticate(admin_user)
    response = api_client.post(f"/api/v1/mode-requests/{own.pk}/approve/", {"comment": "me"}, format="json")
    assert response.status_code == 403
    assert "your own request" in response.json()["detail"]
    assert (response.json()["code"], response.json()["field"]) == ("self_approval", None)
    assert (
        api_client.post(f"/api/v1/mode-requests/{own.pk}/reject/", {"comment": "me"}, format="json").status_code == 403
    )

    client.force_login(admin_user)
    page = client.post(f"/entities/requests/{own.pk}/approve/", {"comment": "me"}, follow=True)
    assert "cannot approve your own request" in page.content.decode()
    approvals = client.get("/entities/approvals/").content.decode()
    assert "Your request: another approver must decide it." in approvals

    changelist = "/admin/entities/modechangerequest/"
    for action in ("approve", "reject"):
        response = client.post(changelist, {"action": action, "_selected_action": [own.pk]}, follow=True)
        assert f"Request #{own.pk}: You cannot {action} your own request" in response.content.decode()
    change_form = f"{changelist}{own.pk}/change/"
    assert 'name="decided_by"' not in client.get(change_form).content.decode()
    response = client.post(change_form, {"status": "approved", "decided_by": admin_user.pk})
    assert response.status_code == 403

    own.refresh_from_db()
    users_entity.refresh_from_db()
    assert (own.status, users_entity.mode) == (RequestStatus.PENDING, Mode.RULES)

    with pytest.raises(IntegrityError, match="modereq_no_self_decision"), transaction.atomic():
        ModeChangeRequest.objects.filter(pk=own.pk).update(
            status=RequestStatus.APPROVED, decided_by=admin_user, decided_at=own.requested_at
        )


@pytest.mark.parametrize("role", ["viewer", "operator", "nobody"])
def test_only_approvers_and_admins_may_decide(request, api_client, client, warehouse, users_entity, admin_user, role):
    pending = request_change(users_entity, admin_user, "shadow")
    user = request.getfixturevalue(role)
    api_client.force_authenticate(user)
    for verb in ("approve", "reject"):
        response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/{verb}/", {"comment": "x"}, format="json")
        assert response.status_code == 403
    client.force_login(user)
    assert client.post(f"/entities/requests/{pending.pk}/approve/", {"comment": "x"}).status_code == 403
    assert client.get("/entities/approvals/").status_code == 403
    pending.refresh_from_db()
    assert pending.status == RequestStatus.PENDING


@pytest.mark.parametrize("role", ["viewer", "approver", "nobody"])
def test_only_operators_and_admins_may_request(request, api_client, users_entity, role):
    api_client.force_authenticate(request.getfixturevalue(role))
    response = api_client.post(
        "/api/v1/entities/users/mode-requests/", {"mode": "shadow", "reason": "x"}, format="json"
    )
    assert response.status_code == 403
    assert not ModeChangeRequest.objects.exists()


def test_a_requester_withdraws_their_own_pending_request(api_client, warehouse, users_entity, operator, admin_user):
    pending = request_change(users_entity, operator, "shadow")

    api_client.force_authenticate(admin_user)  # may approve, but it is not theirs to withdraw
    response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/withdraw/", {}, format="json")
    assert response.status_code == 403
    assert f"Only its requester, {operator.username}, can withdraw" in response.json()["detail"]

    api_client.force_authenticate(operator)
    response = api_client.post(
        f"/api/v1/mode-requests/{pending.pk}/withdraw/", {"comment": "wrong entity"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["decided_by"], body["decision_comment"]) == ("withdrawn", None, "wrong entity")
    assert api_client.get("/api/v1/entities/users/").json()["pending_requests"] == []
    again = api_client.post(f"/api/v1/mode-requests/{pending.pk}/withdraw/", {}, format="json")
    assert (again.status_code, again.json()["detail"]) == (
        409,
        f"Request #{pending.pk} was already withdrawn by {operator.username}.",
    )

    api_client.force_authenticate(admin_user)
    response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and "already withdrawn" in response.json()["detail"]
    users_entity.refresh_from_db()
    assert users_entity.mode == Mode.RULES and not ModeChange.objects.exists()
    withdrawn = AuditEvent.objects.get(action="entity.mode_request.withdraw")
    assert (withdrawn.actor_username, withdrawn.source, withdrawn.reason) == (
        operator.username,
        Source.API,
        "wrong entity",
    )

    with pytest.raises(IntegrityError, match="modereq_decision_fits_status"), transaction.atomic():
        ModeChangeRequest.objects.filter(pk=pending.pk).update(decided_by=admin_user)


@pytest.mark.parametrize("role", ["viewer", "approver", "nobody"])
def test_only_requesters_roles_may_withdraw(request, api_client, client, users_entity, operator, role):
    pending = request_change(users_entity, operator, "shadow")
    user = request.getfixturevalue(role)
    api_client.force_authenticate(user)
    assert api_client.post(f"/api/v1/mode-requests/{pending.pk}/withdraw/", {}, format="json").status_code == 403
    client.force_login(user)
    assert client.post(f"/entities/requests/{pending.pk}/withdraw/").status_code == 403
    pending.refresh_from_db()
    assert pending.status == RequestStatus.PENDING


def test_withdraw_from_the_entity_page(client, users_entity, operator, approver):
    pending = request_change(users_entity, operator, "shadow")
    client.force_login(approver)
    assert 'data-testid="withdraw-form"' not in client.get("/entities/users/").content.decode()

    client.force_login(operator)
    page = client.get("/entities/users/").content.decode()
    assert f'action="/entities/requests/{pending.pk}/withdraw/"' in page
    page = client.post(
        f"/entities/requests/{pending.pk}/withdraw/",
        {"comment": "<b>oops</b>", "next": "/entities/users/"},
        follow=True,
    ).content.decode()
    assert f"Request #{pending.pk} withdrawn." in page
    assert f"withdrawn by {operator.username}: &lt;b&gt;oops&lt;/b&gt;" in page
    assert 'data-testid="withdraw-form"' not in page

    client.force_login(approver)
    approvals = client.get("/entities/approvals/").content.decode()
    assert "Nothing waiting for approval." in approvals
    assert '<span class="badge request-withdrawn">Withdrawn</span>' in approvals


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mode": "turbo", "reason": "x"}, "mode"),
        ({"mode": "canary", "reason": "x"}, "canary_percent"),
        ({"mode": "canary", "canary_percent": 100, "reason": "x"}, "canary_percent"),
        ({"mode": "shadow", "canary_percent": 10, "reason": "x"}, "canary_percent"),
        ({"mode": "shadow", "reason": "  "}, "reason"),
        ({"mode": "rules", "reason": "already there"}, "mode"),
    ],
)
def test_bad_requests_are_400_with_the_field_and_change_nothing(api_client, users_entity, operator, body, field):
    api_client.force_authenticate(operator)
    response = api_client.post("/api/v1/entities/users/mode-requests/", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == field, response.json()
    assert not ModeChangeRequest.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_stale_request_is_refused_with_409(api_client, client, warehouse, users_entity, operator, approver):
    first = request_change(users_entity, operator, "shadow")
    second = request_change(users_entity, operator, "shadow", reason="same, twice")
    api_client.force_authenticate(approver)
    assert api_client.post(f"/api/v1/mode-requests/{first.pk}/approve/", {}, format="json").status_code == 200

    response = api_client.post(f"/api/v1/mode-requests/{second.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    assert "stale" in response.json()["detail"]
    assert response.json()["code"] == "stale_request"
    client.force_login(approver)
    page = client.post(f"/entities/requests/{second.pk}/approve/", {}, follow=True).content.decode()
    assert "is stale: it was made when users was on Rules, but it is now on Shadow" in page
    assert "stale: entity is on Shadow" in client.get("/entities/approvals/").content.decode()

    again = api_client.post(f"/api/v1/mode-requests/{first.pk}/approve/", {}, format="json")
    assert again.status_code == 409
    assert "already approved by ada_approver" in again.json()["detail"]
    assert again.json()["code"] == "already_decided"
    assert ModeChange.objects.count() == 1


def test_a_request_stays_stale_after_the_entity_leaves_and_comes_back_to_its_mode(
    api_client, warehouse, users_entity, operator, approver
):
    old = request_change(users_entity, operator, "shadow", reason="made on rules, long ago")
    move_to(users_entity, operator, approver, "shadow")
    services.rollback(users_entity, actor=operator, reason="back to rules", source=Source.WEB)
    users_entity.refresh_from_db()
    assert users_entity.mode == Mode.RULES

    api_client.force_authenticate(approver)
    response = api_client.post(f"/api/v1/mode-requests/{old.pk}/approve/", {}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "stale_request"
    assert "its mode has changed since (it is back on Rules)" in response.json()["detail"]
    assert api_client.get("/api/v1/mode-requests/?status=pending").json()["results"][0]["stale"] is True
    users_entity.refresh_from_db()
    assert users_entity.mode == Mode.RULES and ModeChange.objects.count() == 2
    old.refresh_from_db()
    assert old.status == RequestStatus.PENDING


def test_reject_needs_a_comment_and_keeps_the_mode(api_client, warehouse, users_entity, operator, approver):
    pending = request_change(users_entity, operator, "shadow")
    api_client.force_authenticate(approver)
    response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/reject/", {"comment": ""}, format="json")
    assert (response.status_code, response.json()["field"], response.json()["code"]) == (400, "comment", "invalid")
    response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/reject/", {"comment": "not now"}, format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["decision_comment"]) == ("rejected", "not now")
    users_entity.refresh_from_db()
    assert users_entity.mode == Mode.RULES
    assert AuditEvent.objects.filter(action="entity.mode_request.reject", reason="not now").exists()


def test_parity_gate_refuses_canary_below_threshold_unless_an_admin_overrides(
    api_client, warehouse, users_entity, operator, approver, admin_user
):
    move_to(users_entity, operator, approver, "shadow")
    pending = request_change(users_entity, operator, "canary", 10)

    api_client.force_authenticate(approver)
    response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    assert "there is no parity report yet" in response.json()["detail"]
    assert (response.json()["code"], response.json()["parity_report"]) == ("parity_gate", None)

    report = failing_report(users_entity)
    response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["parity_report"] == report.pk
    assert response.json()["code"] == "parity_gate"
    assert f"parity report #{report.pk} is 95.00%, below the threshold of 100.00%" in response.json()["detail"]

    response = api_client.post(
        f"/api/v1/mode-requests/{pending.pk}/approve/", {"override_reason": "I insist"}, format="json"
    )
    assert response.status_code == 403
    assert "Only an admin" in response.json()["detail"]
    assert (response.json()["code"], response.json()["field"]) == ("permission_denied", "override_reason")

    api_client.force_authenticate(admin_user)
    response = api_client.post(
        f"/api/v1/mode-requests/{pending.pk}/approve/",
        {"comment": "known department diff", "override_reason": "diff is a fixed legacy bug"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["parity_override_reason"] == "diff is a fixed legacy bug"
    users_entity.refresh_from_db()
    assert users_entity.mode_label == "canary 10%"
    event = AuditEvent.objects.filter(action="entity.mode_request.approve").order_by("id").last()
    assert event.after["parity_override_reason"] == "diff is a fixed legacy bug"
    assert event.after["parity_report"] == report.pk


def test_a_passing_parity_report_opens_the_gate_at_a_lower_threshold(
    api_client, warehouse, users_entity, operator, approver
):
    move_to(users_entity, operator, approver, "shadow")
    EntityType.objects.filter(pk=users_entity.pk).update(parity_threshold="95.00")
    failing_report(users_entity, matching=95)
    pending = request_change(users_entity, operator, "dbt")
    api_client.force_authenticate(approver)
    assert api_client.post(f"/api/v1/mode-requests/{pending.pk}/approve/", {}, format="json").status_code == 200


def test_a_missing_dbt_table_refuses_the_change_and_changes_nothing(
    api_client, warehouse, users_entity, operator, approver
):
    move_to(users_entity, operator, approver, "shadow")
    write_parity_report(users_entity)
    pending = request_change(users_entity, operator, "dbt")
    with psycopg.connect(warehouse) as conn:
        conn.execute("alter table core.fct_users rename to fct_users_hidden")
    try:
        api_client.force_authenticate(approver)
        response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/approve/", {}, format="json")
    finally:
        with psycopg.connect(warehouse) as conn:
            conn.execute("alter table core.fct_users_hidden rename to fct_users")
    assert response.status_code == 409
    assert "core.fct_users does not exist yet" in response.json()["detail"]
    pending.refresh_from_db()
    users_entity.refresh_from_db()
    assert (pending.status, users_entity.mode) == (RequestStatus.PENDING, Mode.SHADOW)
    assert not AuditEvent.objects.filter(action="entity.mode_request.approve", target_id=str(pending.pk)).exists()
    assert "users_dbt" not in view_definition(warehouse)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_approvals_apply_once(entity_types, warehouse, operator, approver, admin_user):
    pending = request_change(entity_types["users"], operator, "shadow")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def approve(user) -> None:
        try:
            barrier.wait()
            services.approve_request(pending.pk, actor=user, comment="", source=Source.API)
            outcomes.append("applied")
        except RequestError as error:
            outcomes.append(f"refused: {error.message}")
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(user,)) for user in (approver, admin_user)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes)[0] == "applied"
    assert sorted(outcomes)[1].startswith("refused: Request #") and "already approved" in sorted(outcomes)[1]
    assert ModeChange.objects.count() == 1
    assert AuditEvent.objects.filter(action="entity.mode.apply").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_failed_metadata_commit_puts_the_view_back(entity_types, warehouse, operator, approver):
    """The warehouse commits first; if the metadata commit then fails, the view is
    re-applied from the mode the metadata DB still holds."""
    users = entity_types["users"]
    services.sync_serving_view("users")
    pending = request_change(users, operator, "shadow")
    move_to(users, operator, approver, "shadow")  # leaves `pending` stale; use a fresh one below
    pending = request_change(users, operator, "dbt")
    write_parity_report(users)
    with connection.cursor() as cursor:
        cursor.execute(
            "create function fail_at_commit() returns trigger language plpgsql as"
            " $$ begin raise exception 'metadata commit refused'; end $$;"
            " create constraint trigger fail_at_commit after insert on entities_modechange"
            " deferrable initially deferred for each row execute function fail_at_commit()"
        )
    try:
        with pytest.raises(Exception, match="metadata commit refused"):
            services.approve_request(pending.pk, actor=approver, comment="", source=Source.WEB)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("drop trigger fail_at_commit on entities_modechange; drop function fail_at_commit()")
    users.refresh_from_db()
    pending.refresh_from_db()
    assert (users.mode, pending.status) == (Mode.SHADOW, RequestStatus.PENDING)
    assert "users_dbt" not in view_definition(warehouse)
    assert "users_rules" in view_definition(warehouse)


def test_sync_serving_views_reapplies_the_modes_the_portal_holds(warehouse, entity_types):
    from django.core.management import call_command

    EntityType.objects.filter(name="users").update(mode=Mode.CANARY, canary_percent=30)
    call_command("sync_serving_views")
    assert "< 3000" in view_definition(warehouse)
    assert query(warehouse, "select count(*) from serving.applications")[0][0] == 45


def test_an_unknown_verb_never_reaches_a_request(users_entity, operator):
    pending = request_change(users_entity, operator, "shadow")
    with pytest.raises(ValueError):
        services.act_on_request("delete", pending.pk, actor=operator, source=Source.API)
    pending.refresh_from_db()
    assert pending.status == RequestStatus.PENDING
    assert not AuditEvent.objects.filter(action__startswith="entity.mode_request.withdraw").exists()
