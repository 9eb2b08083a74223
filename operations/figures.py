"""Run and node-failure figures for GET /metrics, from the metadata database, without reading
every run at every scrape. A run that finished is never changed again, so the runs finished
before a mark are added up once into RunFigures and NodeFailureFigures (settle()); a scrape
reads those few rows plus the runs finished since the mark or not finished yet, with the mark
locked for the scrape (reading_mark()): a settle in another process never makes it count a
run twice or not at all. Every web process thus answers the same numbers.

settle() runs from a scrape, at most every SETTLE_EVERY, one process at a time. The mark
stays SETTLE_MARGIN behind the clock: a run's finished_at comes from its worker host's clock
and commits a moment after it is taken. Changing the bucket bounds needs a migration that
empties the figures and the mark (they are rebuilt from the runs at the next scrape)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from operations.models import FiguresMark
from runs.models import FAILED_NODE_STATUSES

# Seconds: a run's duration (started → finished) and its wait in the queue (queued → started).
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600)
WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
SETTLE_MARGIN = timedelta(minutes=5)
SETTLE_EVERY = timedelta(minutes=5)
SETTLE_LOCK = 0x6D657472  # pg advisory lock key: one settling process at a time

# Runs finished in [after, before): what a settle adds. Runs not finished, or since the mark.
SETTLING = "r.finished_at >= %(after)s AND r.finished_at < %(before)s"
LIVE = "(r.finished_at IS NULL OR r.finished_at >= %(mark)s)"


def _buckets(column: str, bounds: tuple[float, ...]) -> str:
    """count and sum of `column` (NULLs left out), then the cumulative count per bound."""
    filters = ", ".join(f"count(*) FILTER (WHERE {column} <= {float(bound)!r})" for bound in bounds)
    return f"count({column}), coalesce(sum({column}), 0), ARRAY[{filters}]::bigint[]"


def _run_figures(where: str) -> str:
    """Per project, job id (0: none) and state of the runs matching `where`. date_part is
    float8; extract() is numeric since PostgreSQL 14, three times slower here."""
    return f"""
        SELECT project, job_id, state, count(*) AS runs,
               {_buckets("duration", DURATION_BUCKETS)}, {_buckets("wait", WAIT_BUCKETS)}
        FROM (
            SELECT r.project, coalesce(r.job_id, 0) AS job_id, r.state,
                   date_part('epoch', r.finished_at - r.started_at) AS duration,
                   date_part('epoch', r.started_at - r.queued_at) AS wait
            FROM runs_run r WHERE {where}
        ) runs
        GROUP BY 1, 2, 3
    """


def _failures(where: str) -> str:
    """Failed node results by project and resource type, of the runs matching `where`."""
    return f"""
        SELECT r.project, n.resource_type, count(*) AS failures
        FROM runs_noderesult n JOIN runs_run r ON r.id = n.run_id
        WHERE n.status = ANY(%(failed)s) AND {where}
        GROUP BY 1, 2
    """


FIGURE_COLUMNS = "runs, duration_count, duration_sum, duration_buckets, wait_count, wait_sum, wait_buckets"
RUN_FIGURES_SQL = f"""
    SELECT f.project, coalesce(j.name, ''), f.state, {FIGURE_COLUMNS}
    FROM (
        SELECT project, job_id, state, {FIGURE_COLUMNS} FROM operations_runfigures WHERE %(settled)s
        UNION ALL {_run_figures(LIVE)}
    ) f LEFT JOIN runs_job j ON j.id = f.job_id
"""
FAILURE_FIGURES_SQL = f"""
    SELECT project, resource_type, sum(failures)
    FROM (
        SELECT project, resource_type, failures FROM operations_nodefailurefigures WHERE %(settled)s
        UNION ALL {_failures(LIVE)}
    ) f
    GROUP BY 1, 2
"""


def _added(column: str) -> str:
    return f"{column} = operations_runfigures.{column} + EXCLUDED.{column}"


def _added_array(column: str) -> str:
    pairs = f"unnest(operations_runfigures.{column}, EXCLUDED.{column}) WITH ORDINALITY AS t(a, b, i)"
    return f"{column} = ARRAY(SELECT a + b FROM {pairs} ORDER BY i)"


SETTLE_RUNS_SQL = f"""
    INSERT INTO operations_runfigures (project, job_id, state, {FIGURE_COLUMNS})
    {_run_figures(SETTLING)}
    ON CONFLICT ON CONSTRAINT runfigures_unique DO UPDATE SET
        {", ".join(_added(c) for c in ("runs", "duration_count", "duration_sum", "wait_count", "wait_sum"))},
        {_added_array("duration_buckets")}, {_added_array("wait_buckets")}
"""
SETTLE_FAILURES_SQL = f"""
    INSERT INTO operations_nodefailurefigures (project, resource_type, failures)
    {_failures(SETTLING)}
    ON CONFLICT ON CONSTRAINT nodefailurefigures_unique DO UPDATE SET
        failures = operations_nodefailurefigures.failures + EXCLUDED.failures
"""


def _mark() -> datetime | None:
    return FiguresMark.objects.values_list("settled_before", flat=True).first()


def settle() -> None:
    """Add the runs finished between the mark and SETTLE_MARGIN ago to the figures and move
    the mark there, when it is SETTLE_EVERY old; a process that finds another settling skips."""
    before = timezone.now() - SETTLE_MARGIN
    after = _mark()
    if after is not None and before - after < SETTLE_EVERY:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SETTLE_LOCK])
        if not cursor.fetchone()[0]:
            return
        after = _mark()  # another process may have settled between the first look and the lock
        if after is not None and before - after < SETTLE_EVERY:
            return
        params = {
            "after": after or datetime.min.replace(tzinfo=UTC),
            "before": before,
            "failed": sorted(FAILED_NODE_STATUSES),
        }
        cursor.execute(SETTLE_RUNS_SQL, params)
        cursor.execute(SETTLE_FAILURES_SQL, params)
        FiguresMark.objects.update_or_create(pk=1, defaults={"settled_before": before})


def reading_mark() -> datetime | None:
    """The mark, locked FOR SHARE until the scrape's transaction ends, so no settle moves it, nor
    commits the runs it adds, between the scrape's reading of the settled figures and of the runs
    since (a settle updates the mark last, in the transaction that adds them). None: nothing is
    settled yet (a first settle may be under way: its figures are then left out)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT settled_before FROM operations_figuresmark WHERE id = 1 FOR SHARE")
        row = cursor.fetchone()
    return row[0] if row else None


def _params(mark: datetime | None) -> dict[str, object]:
    return {
        "mark": mark or datetime.min.replace(tzinfo=UTC),
        "settled": mark is not None,
        "failed": sorted(FAILED_NODE_STATUSES),
    }


def run_figures(mark: datetime | None) -> list[tuple]:
    """(project, job name or '', state, runs, duration count, sum, cumulative buckets, wait
    count, sum, cumulative buckets) rows, settled at `mark` (reading_mark()) and since; one label
    set may come twice."""
    with connection.cursor() as cursor:
        cursor.execute(RUN_FIGURES_SQL, _params(mark))
        return cursor.fetchall()


def failure_figures(mark: datetime | None) -> list[tuple[str, str, int]]:
    """(project, resource type, failed node results) rows, settled at `mark` and since."""
    with connection.cursor() as cursor:
        cursor.execute(FAILURE_FIGURES_SQL, _params(mark))
        return cursor.fetchall()
