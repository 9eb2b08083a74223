"""Source freshness: what each `dbt source freshness` said about each source, kept per run
(pushed by runs), and the latest word per source that pages, the API, metrics, SLAs and the
dashboard read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from dbtlib.artifacts import FreshnessOutcome, threshold_seconds
from lineage.models import FreshnessStatus, SourceFreshness

HISTORY = 10  # runs of history a page shows per source
_UPDATED = (
    "project", "source", "status", "max_loaded_at", "snapshotted_at", "age_seconds", "criteria", "warn_after_seconds",
    "error_after_seconds", "error",
)  # fmt: skip


def record(project: str, run_id: int, outcomes: Iterable[FreshnessOutcome]) -> int:
    """Keep one row per source for this run (a second freshness step of the run replaces
    the first's); returns how many sources were recorded."""
    now = timezone.now()
    rows = {
        outcome.unique_id: SourceFreshness(
            project=project,
            unique_id=outcome.unique_id,
            source=outcome.source,
            status=outcome.status,
            max_loaded_at=outcome.max_loaded_at,
            snapshotted_at=outcome.snapshotted_at or now,
            age_seconds=outcome.age_seconds,
            criteria=outcome.criteria,
            warn_after_seconds=threshold_seconds(outcome.criteria, "warn_after"),
            error_after_seconds=threshold_seconds(outcome.criteria, "error_after"),
            error=outcome.error[:5000],
            run_id=run_id,
        )
        for outcome in outcomes
    }
    SourceFreshness.objects.bulk_create(
        rows.values(), update_conflicts=True, unique_fields=["run_id", "unique_id"], update_fields=_UPDATED
    )
    return len(rows)


def latest(project: str | None = None) -> list[SourceFreshness]:
    """The newest row of each source (of one project, or of all), by project and source."""
    rows = SourceFreshness.objects.order_by("project", "unique_id", "-snapshotted_at", "-id").distinct(
        "project", "unique_id"
    )
    return list(rows if project is None else rows.filter(project=project))


def history(project: str, per_source: int = HISTORY) -> dict[str, list[SourceFreshness]]:
    """The newest `per_source` rows of each source of a project, newest first."""
    newest_first = [F("snapshotted_at").desc(), F("id").desc()]
    ranked = (
        SourceFreshness.objects.filter(project=project)
        .annotate(rank=Window(RowNumber(), partition_by=[F("unique_id")], order_by=newest_first))
        .filter(rank__lte=per_source)
        .order_by("unique_id", *newest_first)
    )
    found: dict[str, list[SourceFreshness]] = {}
    for row in ranked:
        found.setdefault(row.unique_id, []).append(row)
    return found


@dataclass(frozen=True)
class Summary:
    """Counts of the latest statuses, and the sources that are not fresh (worst first)."""

    counts: dict[str, int]
    stale: list[SourceFreshness]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_WORST_FIRST = [FreshnessStatus.RUNTIME_ERROR, FreshnessStatus.ERROR, FreshnessStatus.WARN, FreshnessStatus.PASS]


def summary(project: str | None = None) -> Summary:
    rows = latest(project)
    counts = {status.value: sum(row.status == status for row in rows) for status in reversed(_WORST_FIRST)}
    stale = sorted(
        (row for row in rows if row.status != FreshnessStatus.PASS),
        key=lambda row: (_WORST_FIRST.index(row.status), -(row.age_seconds or 0), row.project, row.source),  # type: ignore[arg-type]
    )
    return Summary(counts=counts, stale=stale)
