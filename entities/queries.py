"""Read-side helpers shared by pages and API."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from django.db.models import F, Prefetch, Window, prefetch_related_objects
from django.db.models.fields.json import KT
from django.db.models.functions import RowNumber

from entities import router
from entities.models import WRITES_PARITY, EntityType, Mode, ModeChangeRequest, ParityReport
from entities.services import warehouse
from runs.models import Run

logger = logging.getLogger(__name__)

REFRESH_KIND = "entity-refresh"


def refreshes(entity: EntityType):
    return Run.objects.filter(kind=REFRESH_KIND, params__entity=entity.name)


def with_latest_report(entities: list[EntityType]) -> None:
    """Sets each entity's `latest_report` (None without one) and `latest_passes` (it meets the
    threshold), in one query whatever the number of entities (an entity may be listed twice)."""
    latest = ParityReport.objects.order_by("-created_at", "-id")[:1]
    prefetch_related_objects(entities, Prefetch("parity_reports", queryset=latest, to_attr="latest_reports"))
    for entity in entities:
        entity.latest_report = entity.latest_reports[0] if entity.latest_reports else None
        entity.latest_passes = entity.parity_passes(entity.latest_report)


def with_overview(entities: Iterable[EntityType]) -> list[EntityType]:
    """`entities` with `latest_report`, `latest_passes`, `last_refresh` and `pending_requests`
    (oldest first) set: three queries whatever the number of entities."""
    entities = list(entities)
    with_latest_report(entities)
    pending = ModeChangeRequest.objects.pending().select_related("requested_by", "decided_by")
    prefetch_related_objects(
        entities, Prefetch("mode_requests", queryset=pending.order_by("requested_at", "id"), to_attr="pending_requests")
    )
    newest = Window(RowNumber(), partition_by=KT("params__entity"), order_by=[F("queued_at").desc(), F("id").desc()])
    runs = (
        Run.objects.filter(kind=REFRESH_KIND, params__entity__in=[entity.name for entity in entities])
        .annotate(entity_name=KT("params__entity"), newest=newest)
        .filter(newest=1)
        .select_related("triggered_by")
    )
    last = {run.entity_name: run for run in runs}
    for entity in entities:
        entity.last_refresh = last.get(entity.name)
    return entities


def built_serving_views(entities: Iterable[EntityType]) -> set[str] | None:
    """The serving views that exist in the warehouse; None when it cannot be reached."""
    try:
        with warehouse() as conn:
            return {
                entity.serving_view
                for entity in entities
                if router.current_definition(conn, entity.serving_relation) is not None
            }
    except psycopg.Error as error:  # pages still render when the warehouse is unreachable
        logger.warning("could not read the serving views from the warehouse: %s", error)
        return None


@dataclass(frozen=True)
class NextStep:
    """What a person looking at the entity should do now; `action` names the form that does it."""

    text: str
    action: str = ""  # "refresh", "request" or "" (nothing to press)


def next_step(
    entity: EntityType,
    *,
    view_built: bool,
    active_refresh: Run | None,
    latest: ParityReport | None,
    pending: ModeChangeRequest | None,
) -> NextStep:
    name, view = entity.name, entity.serving_view
    if active_refresh is not None:
        return NextStep(f"A refresh is {active_refresh.get_state_display().lower()} (run #{active_refresh.pk}).")
    if not view_built:
        return NextStep(
            f"{view} does not exist yet: refresh {name}. A refresh in {entity.mode_label} mode "
            f"{entity.refresh_steps}, and creates {view}.",
            "refresh",
        )
    if pending is not None:
        waiting = f"Request #{pending.pk} ({pending.to_label}) is waiting for an approver"
        if not entity.gate_allows(pending.mode, latest):
            evidence = f"parity is {latest.percent_display}%" if latest else "there is no parity report"
            blocked = f"{waiting}, but {evidence} (threshold {entity.parity_threshold}%): it cannot be approved"
            if entity.mode not in WRITES_PARITY:
                return NextStep(f"{blocked}; parity reports come from refreshes in shadow or canary mode.")
            return NextStep(
                f"{blocked} until a refresh reaches the threshold, unless an admin overrides with a reason.",
                "refresh",
            )
        return NextStep(f"{waiting}.")
    if entity.mode == Mode.RULES:
        return NextStep(
            "Request shadow mode to run dbt beside the rules engine and compare their output "
            "(consumers keep reading the rules output).",
            "request",
        )
    if entity.mode == Mode.DBT:
        return NextStep(f"dbt serves {view}. If something breaks, roll back to rules at once.")
    if latest is None:
        return NextStep(f"Refresh {name} to run both engines and write the first parity report.", "refresh")
    if not entity.parity_passes(latest):
        return NextStep(
            f"Parity is {latest.percent_display}%, below the threshold of {entity.parity_threshold}%: read the "
            f"differing columns and sample keys of the report, fix the dbt model (or the rule), then refresh.",
            "refresh",
        )
    target = "canary (a share of the keys from dbt)" if entity.mode == Mode.SHADOW else "dbt"
    return NextStep(
        f"Parity is {latest.percent_display}% (threshold {entity.parity_threshold}%): request {target}.", "request"
    )


def entity_overview() -> tuple[list[EntityType], bool]:
    """Every entity type with its overview and next step (a fixed number of queries), and
    whether the warehouse answered."""
    entities = with_overview(EntityType.objects.select_related("owner"))
    built = built_serving_views(entities)
    for entity in entities:
        entity.next_step = next_step(
            entity,
            view_built=built is None or entity.serving_view in built,
            active_refresh=entity.last_refresh if entity.last_refresh and not entity.last_refresh.is_final else None,
            latest=entity.latest_report,
            pending=entity.pending_requests[0] if entity.pending_requests else None,
        )
    return entities, built is not None
