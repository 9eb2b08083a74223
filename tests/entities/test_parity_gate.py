"""The parity gate is one rule (EntityType.gate_allows); approval, pages and API agree on it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from entities.models import EntityType, Mode, ParityReport, RequestStatus
from tests.entities.helpers import failing_report, move_to, request_change


def report(matching: int, total: int = 10_000) -> ParityReport:
    return ParityReport(
        rules_rows=total, dbt_rows=total, matching_rows=matching, only_in_rules=0, only_in_dbt=0,
        mismatched_rows=total - matching,
    )  # fmt: skip


@pytest.mark.parametrize("mode", [Mode.RULES, Mode.SHADOW])
@pytest.mark.parametrize("evidence", [None, 0, 9_499, 10_000])
def test_rules_and_shadow_need_no_parity_report(mode, evidence):
    entity = EntityType(name="users", parity_threshold=Decimal("95.00"))
    assert entity.gate_allows(mode, None if evidence is None else report(evidence))
    assert entity.gate_allows(mode)


@pytest.mark.parametrize("mode", [Mode.CANARY, Mode.DBT])
@pytest.mark.parametrize(
    ("threshold", "matching", "total", "allowed"),
    [
        ("95.00", None, 10_000, False),  # no report
        ("95.00", 9_499, 10_000, False),  # 94.99%: below
        ("95.00", 9_500, 10_000, True),  # exactly at the threshold
        ("95.00", 10_000, 10_000, True),
        ("99.50", 199, 200, True),  # 99.5% exactly
        ("99.50", 1_990, 2_001, False),  # 99.45…%
        ("100.00", 9_999, 10_000, False),  # 99.99% never rounds up to 100%
        ("100.00", 0, 0, True),  # nothing to compare: both sides empty
    ],
)
def test_canary_and_dbt_need_a_report_at_or_above_the_threshold(mode, threshold, matching, total, allowed):
    entity = EntityType(name="users", parity_threshold=Decimal(threshold))
    evidence = None if matching is None else report(matching, total)
    assert entity.gate_allows(mode, evidence) is allowed
    assert entity.parity_passes(evidence) is allowed


@pytest.mark.django_db
@pytest.mark.parametrize(("matching", "open_gate"), [(94, False), (95, True)])
def test_approval_entity_page_approvals_page_and_api_agree_on_the_gate(
    client, api_client, warehouse, users_entity, operator, approver, admin_user, matching, open_gate
):
    move_to(users_entity, operator, approver, "shadow")
    EntityType.objects.filter(pk=users_entity.pk).update(parity_threshold="95.00")
    latest = failing_report(users_entity, matching=matching)
    pending = request_change(users_entity, operator, "dbt")
    users_entity.refresh_from_db()
    assert users_entity.gate_allows(Mode.DBT, latest) is open_gate

    client.force_login(admin_user)
    entity_page = client.get("/entities/users/").content.decode()
    assert ("it cannot be approved until a refresh reaches the threshold" in entity_page) is not open_gate
    assert (f"Request #{pending.pk} (dbt) is waiting for an approver." in entity_page) is open_gate
    approvals_page = client.get("/entities/approvals/").content.decode()
    assert ("below the parity gate" in approvals_page) is not open_gate
    assert ('name="override_reason"' in approvals_page) is not open_gate
    assert f"parity report #{latest.pk}: " in approvals_page

    api_client.force_authenticate(approver)
    entity = api_client.get("/api/v1/entities/users/").json()
    assert (entity["latest_parity"]["id"], entity["latest_parity"]["meets_threshold"]) == (latest.pk, open_gate)
    response = api_client.post(f"/api/v1/mode-requests/{pending.pk}/approve/", {}, format="json")
    assert response.status_code == (200 if open_gate else 409), response.json()
    assert ("Parity gate" in response.json().get("detail", "")) is not open_gate
    pending.refresh_from_db()
    assert pending.status == (RequestStatus.APPROVED if open_gate else RequestStatus.PENDING)
