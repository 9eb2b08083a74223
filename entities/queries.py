"""Read-side helpers shared by pages and API."""

from __future__ import annotations

from entities.models import EntityType
from runs.models import Run

REFRESH_KIND = "entity-refresh"


def refreshes(entity: EntityType):
    return Run.objects.filter(kind=REFRESH_KIND, params__entity=entity.name)


def last_refresh(entity: EntityType) -> Run | None:
    return refreshes(entity).order_by("-queued_at", "-id").first()


def entity_overview() -> list[EntityType]:
    entities = list(EntityType.objects.select_related("owner"))
    for entity in entities:
        entity.last_refresh = last_refresh(entity)
        entity.latest_report = entity.latest_parity()
        entity.pending_count = entity.mode_requests.pending().count()
    return entities
