"""Break-glass rollback, the entity pages, the Django admin, and the API read endpoints."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent, Source
from entities import notifications
from entities.models import EntityType, Mode, ModeChange, ModeChangeRequest, ParityReport
from entities.queries import next_step
from tests.conftest import drain_queue
from tests.entities.conftest import query
from tests.entities.helpers import failing_report, move_to, request_change

pytestmark = pytest.mark.django_db


def test_operator_rolls_back_from_the_page_and_approvers_are_emailed(
    client,
    warehouse,
    users_entity,
    operator,
    approver,
    admin_user,
    viewer,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    move_to(users_entity, operator, approver, "shadow")
    move_to(users_entity, operator, approver, "dbt")
    drain_queue()
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/entities/users/rollback/", {"reason": "<b>owners</b> wrong"}, follow=True)
    page = response.content.decode()
    assert "users is back on rules. Approvers have been emailed." in page
    assert "&lt;b&gt;owners&lt;/b&gt; wrong" in page and "<b>owners</b>" not in page
    users_entity.refresh_from_db()
    assert users_entity.mode == Mode.RULES
    assert "users_dbt" not in query(warehouse, "select pg_get_viewdef('serving.users'::regclass, true)")[0][0]
    change = ModeChange.objects.first()
    assert (change.kind, change.from_mode, change.actor) == ("rollback", "dbt", operator)
    event = AuditEvent.objects.filter(action="entity.rollback").get()
    assert (event.before["mode"], event.after["mode"], event.source) == ("dbt", "rules", Source.WEB)
    assert (drain_queue(), mailoutbox) == (["entities.notifications.email_rollback"], [])  # sent from the queue
    notifications.email_rollback(change.pk)
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == sorted([approver.email, admin_user.email])
    assert viewer.email not in mailoutbox[0].to


def test_rollback_needs_a_reason_and_a_mode_to_leave(api_client, client, warehouse, users_entity, operator, approver):
    api_client.force_authenticate(operator)
    response = api_client.post("/api/v1/entities/users/rollback/", {"reason": "x"}, format="json")
    assert (response.status_code, response.json()["detail"]) == (409, "users is already on rules.")
    move_to(users_entity, operator, approver, "shadow")
    response = api_client.post("/api/v1/entities/users/rollback/", {"reason": ""}, format="json")
    assert (response.status_code, response.json()["field"]) == (400, "reason")
    client.force_login(operator)
    response = client.post("/entities/users/rollback/", {"reason": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    users_entity.refresh_from_db()
    assert users_entity.mode == Mode.SHADOW


@pytest.mark.parametrize("role", ["viewer", "approver"])
def test_viewers_and_approvers_cannot_roll_back(request, api_client, client, warehouse, users_entity, role):
    user = request.getfixturevalue(role)
    api_client.force_authenticate(user)
    assert api_client.post("/api/v1/entities/users/rollback/", {"reason": "x"}, format="json").status_code == 403
    client.force_login(user)
    assert client.post("/entities/users/rollback/", {"reason": "x"}).status_code == 403


def test_entity_list_shows_mode_parity_and_pending_requests(
    client, warehouse, entity_types, operator, approver, viewer
):
    users = entity_types["users"]
    move_to(users, operator, approver, "shadow")
    move_to(users, operator, approver, "canary", 20)
    request_change(users, operator, "dbt")
    client.force_login(viewer)
    page = client.get("/entities/").content.decode()
    assert 'data-entity="users"' in page and 'data-entity="applications"' in page
    assert "canary 20%" in page
    assert "100.00%" in page
    assert "1 pending" in page
    home = client.get("/").content.decode()
    assert "canary 20%" in home and "applications" in home


@pytest.mark.parametrize(
    ("role", "can_refresh", "sees_approvals"),
    [("viewer", False, False), ("operator", True, False), ("approver", False, True), ("admin_user", True, True)],
)
def test_home_shows_entity_modes_and_next_steps_for_each_role(
    request, client, warehouse, entity_types, operator, approver, role, can_refresh, sees_approvals
):
    users = move_to(entity_types["users"], operator, approver, "shadow")
    request_change(users, operator, "canary", 10)
    client.force_login(request.getfixturevalue(role))
    response = client.get("/")
    assert response.status_code == 200
    page = response.content.decode()
    table = page[page.index('data-testid="home-entities"') :]
    assert '<span class="badge mode-shadow" data-testid="mode-badge">Shadow</span>' in table
    assert '<span class="badge mode-rules" data-testid="mode-badge">Rules</span>' in table
    # applications was never refreshed in this warehouse: its serving view does not exist
    assert "serving.applications does not exist yet: refresh applications." in table
    assert ('action="/entities/applications/refresh/"' in table) is can_refresh
    assert ("(an operator refreshes)" in table) is not can_refresh
    assert "1 pending" in table
    assert ('href="/entities/approvals/"' in table) is sees_approvals
    assert f"Request #{users.mode_requests.get(status='pending').pk} (canary 10%) is waiting" in table


@pytest.mark.parametrize(
    ("mode", "report", "pending_mode", "expected", "action"),
    [
        ("rules", None, "canary", "cannot be approved; parity reports come from refreshes in shadow", ""),
        ("shadow", 95, "dbt", "parity is 95.00% (threshold 100.00%): it cannot be approved until a refresh", "refresh"),
        ("shadow", 100, "dbt", "Request #7 (dbt) is waiting for an approver.", ""),
        ("shadow", 95, None, "Parity is 95.00%, below the threshold of 100.00%", "refresh"),
        ("shadow", 100, None, "request canary", "request"),
        ("canary", 100, None, "request dbt.", "request"),
        ("dbt", None, None, "roll back to rules at once", ""),
    ],
)
def test_next_step_follows_mode_evidence_and_pending_request(mode, report, pending_mode, expected, action):
    entity = EntityType(
        name="users", serving_view="serving.users", mode=mode, canary_percent=5 if mode == "canary" else None
    )
    latest = None
    if report is not None:
        latest = ParityReport(
            rules_rows=100, dbt_rows=100, matching_rows=report, only_in_rules=0, only_in_dbt=0,
            mismatched_rows=100 - report,
        )  # fmt: skip
    pending = ModeChangeRequest(pk=7, mode=pending_mode, canary_percent=10 if pending_mode == "canary" else None)
    step = next_step(
        entity, view_built=True, active_refresh=None, latest=latest, pending=pending if pending_mode else None
    )
    assert expected in step.text
    assert step.action == action


def test_home_refuses_a_user_without_a_role(client, nobody):
    client.force_login(nobody)
    assert client.get("/").status_code == 403


def test_entity_detail_shows_history_reports_view_sql_and_forms_by_role(
    client, warehouse, users_entity, operator, approver, viewer
):
    move_to(users_entity, operator, approver, "shadow")
    report = failing_report(users_entity, matching=98)
    client.force_login(viewer)
    page = client.get("/entities/users/").content.decode()
    assert "Rules → <strong>Shadow</strong>" in page
    assert f'data-report="{report.pk}"' in page and "98.00%" in page
    assert "<code>department</code>" in page and "7, 9" in page
    assert "create or replace view &quot;serving&quot;.&quot;users&quot;" in page
    assert "Request change" not in page and "Refresh users" not in page
    client.force_login(operator)
    page = client.get("/entities/users/").content.decode()
    assert "Request change" in page and "Refresh users" in page and "Roll back to rules now" in page


def test_request_form_errors_are_shown_and_nothing_is_created(client, users_entity, operator):
    client.force_login(operator)
    response = client.post("/entities/users/mode-requests/", {"mode": "canary", "reason": "try"})
    assert response.status_code == 400
    assert "Canary needs a percentage from 1 to 99." in response.content.decode()
    response = client.post("/entities/users/mode-requests/", {"mode": "shadow", "reason": "go"}, follow=True)
    assert "is waiting for an approver" in response.content.decode()
    assert users_entity.mode_requests.count() == 1


def test_approvals_queue_lists_pending_requests_with_their_evidence(
    client, warehouse, users_entity, operator, approver
):
    move_to(users_entity, operator, approver, "shadow")
    failing_report(users_entity)
    request_change(users_entity, operator, "canary", 5, reason="<script>alert(1)</script>")
    client.force_login(approver)
    page = client.get("/entities/approvals/").content.decode()
    assert "Shadow → <strong>canary 5%</strong>" in page
    assert "below the parity gate" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "Parity override reason" not in page  # approvers cannot override


def test_get_never_writes(client, users_entity, operator):
    client.force_login(operator)
    events = AuditEvent.objects.count()
    assert client.get("/entities/users/rollback/").status_code == 405
    assert client.get("/entities/users/refresh/").status_code == 405
    assert client.get("/entities/users/").status_code == 200
    assert AuditEvent.objects.count() == events


def test_api_lists_entities_and_parity_reports(api_client, warehouse, users_entity, viewer):
    failing_report(users_entity)
    api_client.force_authenticate(viewer)
    entities = api_client.get("/api/v1/entities/").json()
    assert [e["name"] for e in entities] == ["applications", "users"]
    users = api_client.get("/api/v1/entities/users/").json()
    assert (users["mode"], users["canary_percent"], users["latest_parity"]["parity_percent"]) == (
        "rules",
        None,
        "95.00",
    )
    reports = api_client.get("/api/v1/entities/users/parity-reports/").json()
    assert reports["count"] == 1
    assert reports["results"][0]["sample_keys"]["columns"] == {"department": ["7", "9"]}
    assert api_client.get("/api/v1/entities/nope/").status_code == 404


def test_admin_edits_are_audited_and_cannot_change_the_mode(client, users_entity, admin_user):
    client.force_login(admin_user)
    url = f"/admin/entities/entitytype/{users_entity.pk}/change/"
    page = client.get(url).content.decode()
    assert 'name="mode"' not in page
    response = client.post(
        url,
        {
            "description": "people",
            "dbt_selector": "+fct_users",
            "parity_threshold": "99.50",
            "owner": admin_user.pk,
            "mode": "dbt",
        },
    )
    assert response.status_code == 302
    users_entity.refresh_from_db()
    assert (users_entity.parity_threshold, users_entity.mode) == (pytest.approx(99.5), Mode.RULES)
    event = AuditEvent.objects.get(action="entities.entitytype.update")
    assert (event.source, event.before["parity_threshold"], event.after["parity_threshold"]) == (
        Source.ADMIN,
        "100.00",
        "99.50",
    )


def test_admin_cannot_save_a_selector_dbt_would_read_as_an_option(client, users_entity, admin_user):
    client.force_login(admin_user)
    response = client.post(
        f"/admin/entities/entitytype/{users_entity.pk}/change/",
        {"description": "people", "dbt_selector": "+fct_users --profiles-dir /tmp", "parity_threshold": "100.00"},
    )
    assert response.status_code == 200
    assert "selector term &#x27;--profiles-dir&#x27; starts with &#x27;-&#x27;" in response.content.decode()
    users_entity.refresh_from_db()
    assert users_entity.dbt_selector == "+fct_users"
    assert not AuditEvent.objects.filter(action__startswith="entities.").exists()


def test_admin_approves_others_requests_through_the_service(client, warehouse, users_entity, operator, admin_user):
    pending = request_change(users_entity, operator, "shadow")
    client.force_login(admin_user)
    response = client.post(
        "/admin/entities/modechangerequest/",
        {"action": "approve", "_selected_action": [pending.pk]},
        follow=True,
    )
    assert f"Request #{pending.pk} approved." in response.content.decode()
    assert EntityType.objects.get(name="users").mode == Mode.SHADOW
    assert AuditEvent.objects.filter(action="entity.mode.apply", source=Source.ADMIN).exists()


def test_approver_decides_from_the_entity_page_but_not_their_own(client, warehouse, users_entity, operator, approver):
    others = request_change(users_entity, operator, "shadow")
    client.force_login(approver)
    page = client.get("/entities/users/").content.decode()
    assert f'action="/entities/requests/{others.pk}/approve/"' in page
    response = client.post(
        f"/entities/requests/{others.pk}/approve/", {"comment": "fine", "next": "/entities/users/"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/entities/users/"
    assert f"Request #{others.pk} approved: users is now on Shadow." in response.content.decode()

    client.force_login(operator)
    mine = request_change(users_entity, operator, "rules", reason="back")
    client.force_login(approver)
    page = client.get("/entities/users/").content.decode()
    assert f'action="/entities/requests/{mine.pk}/approve/"' in page
    response = client.post(
        f"/entities/requests/{mine.pk}/reject/", {"comment": "no", "next": "https://evil.example/"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/entities/approvals/"


def test_a_refused_request_is_a_form_error_on_the_page(client, users_entity, operator):
    client.force_login(operator)
    response = client.post("/entities/users/mode-requests/", {"mode": "rules", "reason": "again"})
    assert response.status_code == 400
    assert "users is already on Rules" in response.content.decode()
    assert not users_entity.mode_requests.exists()
