from __future__ import annotations

from audit.models import Source
from entities import services
from entities.models import EntityType, ParityReport
from entities.parity_gate import fingerprint
from entities.refresh import write_parity_report


def request_change(entity: EntityType, user, mode: str, percent: int | None = None, reason: str = "next step"):
    return services.request_mode_change(
        entity, mode=mode, canary_percent=percent, reason=reason, actor=user, source=Source.WEB
    )


def move_to(entity: EntityType, requester, approver, mode: str, percent: int | None = None) -> EntityType:
    """Request and approve a change (the gate passes on a fresh 100% report when needed)."""
    if mode in ("canary", "dbt"):
        write_parity_report(entity)
    request = request_change(entity, requester, mode, percent)
    services.approve_request(request.pk, actor=approver, comment="ok", source=Source.WEB)
    entity.refresh_from_db()
    return entity


def failing_report(entity: EntityType, matching: int = 95, total: int = 100) -> ParityReport:
    return ParityReport.objects.create(
        entity=entity,
        rules_rows=total,
        dbt_rows=total,
        matching_rows=matching,
        only_in_rules=0,
        only_in_dbt=0,
        mismatched_rows=total - matching,
        column_differences={"department": total - matching},
        sample_keys={"only_in_rules": [], "only_in_dbt": [], "columns": {"department": ["7", "9"]}},
        seconds=0.1,
        inputs=fingerprint(entity),  # made on the current inputs
    )
