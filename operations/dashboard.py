"""The numbers of the dashboard: "is the data on time and right?" over a window (24 h, 7 d,
30 d). Every aggregate is computed in SQL (FILTER, percentile_cont, date_trunc, window
functions), one query each, so the page makes a fixed number of queries whatever the
number of runs and results stored.

A run counts towards a success rate when it ended success, failed, error or timed out
(cancelled and skipped runs say nothing about the pipeline). A job's outage starts at a
failing run that follows a success (or is its first ending in the window) and ends at the
job's next success; mean time to recovery averages the recovered outages.

At 100,000 runs and 1,000,000 node results the aggregates of a 30-day window take seconds,
so the queue's scheduler computes every window each minute into a DashboardSnapshot and the
page reads it; a page whose snapshot is missing or older than MAX_AGE_SECONDS computes (and
stores) its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dbtlib.commands import EXECUTING_COMMANDS
from entities.models import EntityType
from entities.queries import with_latest_report
from operations.models import DashboardSnapshot
from runs.charts import line_chart, percent_bars
from runs.history import slowest_models
from runs.models import FAILED_NODE_STATUSES, Job, NodeResult, Run, RunState

TARGET_SUCCESS_PERCENT = 99.0
TOP = 10
COUNTED = (RunState.SUCCESS, RunState.FAILED, RunState.ERROR, RunState.TIMED_OUT)


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    length: timedelta
    bucket: str  # date_trunc's unit for the trend


WINDOWS = {
    w.key: w
    for w in (
        Window("24h", "24 hours", timedelta(hours=24), "hour"),
        Window("7d", "7 days", timedelta(days=7), "day"),
        Window("30d", "30 days", timedelta(days=30), "day"),
    )
}
DEFAULT_WINDOW = "24h"
MAX_AGE_SECONDS = 120  # twice the scheduler's period: a missed beat still reads a snapshot


def _rows(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _percent(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def success_rates(since: datetime) -> tuple[dict, list[dict]]:
    """The overall success rate and one per job (runs outside any job are a row of their own)."""
    rows = _rows(
        f"""
        SELECT GROUPING(r.job_id) = 1 AS overall, r.job_id, j.name, j.project,
               count(*) FILTER (WHERE r.state = 'success') AS succeeded, count(*) AS ended
        FROM {Run._meta.db_table} r LEFT JOIN {Job._meta.db_table} j ON j.id = r.job_id
        WHERE r.queued_at >= %(since)s AND r.state = ANY(%(counted)s)
        GROUP BY GROUPING SETS ((r.job_id, j.name, j.project), ())
        ORDER BY count(*) FILTER (WHERE r.state = 'success')::float / NULLIF(count(*), 0), j.name NULLS LAST
        """,
        {"since": since, "counted": list(COUNTED)},
    )
    for row in rows:
        row["percent"] = _percent(row["succeeded"], row["ended"])
    overall = next((r for r in rows if r["overall"]), {"succeeded": 0, "ended": 0, "percent": None})
    return overall, [r for r in rows if not r["overall"]]


def recovery(since: datetime) -> tuple[dict, dict[int, dict]]:
    """Outages (failures of a job until its next success) that began in the window: overall
    and per job, each with how many recovered and the mean time to recovery in seconds."""
    failing = [s for s in COUNTED if s != RunState.SUCCESS]
    rows = _rows(
        f"""
        WITH ended AS (
            SELECT job_id, state, finished_at,
                   lag(state) OVER (PARTITION BY job_id ORDER BY finished_at, id) AS before
            FROM {Run._meta.db_table}
            WHERE job_id IS NOT NULL AND finished_at >= %(since)s AND state = ANY(%(counted)s)
        ), outages AS (
            SELECT job_id, finished_at AS began FROM ended
            WHERE state = ANY(%(failing)s) AND (before IS NULL OR before = 'success')
        )
        SELECT GROUPING(o.job_id) = 1 AS overall, o.job_id, count(*) AS outages,
               count(back.finished_at) AS recovered,
               avg(EXTRACT(EPOCH FROM back.finished_at - o.began))::float AS mttr_seconds
        FROM outages o LEFT JOIN LATERAL (
            SELECT s.finished_at FROM {Run._meta.db_table} s
            WHERE s.job_id = o.job_id AND s.state = 'success' AND s.finished_at > o.began
            ORDER BY s.finished_at LIMIT 1
        ) back ON true
        GROUP BY GROUPING SETS ((o.job_id), ())
        """,
        {"since": since, "counted": list(COUNTED), "failing": failing},
    )
    overall = next((r for r in rows if r["overall"]), {"outages": 0, "recovered": 0, "mttr_seconds": None})
    return overall, {r["job_id"]: r for r in rows if not r["overall"]}


def duration_trend(since: datetime, bucket: str) -> list[dict]:
    """Runs that started and ended, per hour or day of their start (UTC, as a label): count,
    mean and p95 seconds."""
    return _rows(
        f"""
        SELECT to_char(date_trunc(%(bucket)s, started_at), %(label)s) AS bucket, count(*) AS runs,
               avg(EXTRACT(EPOCH FROM finished_at - started_at))::float AS mean_seconds,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM finished_at - started_at))
                   AS p95_seconds
        FROM {Run._meta.db_table}
        WHERE queued_at >= %(since)s AND started_at IS NOT NULL AND finished_at IS NOT NULL
        GROUP BY 1 ORDER BY 1
        """,
        {"since": since, "bucket": bucket, "label": "YYYY-MM-DD HH24:00" if bucket == "hour" else "YYYY-MM-DD"},
    )


def queue_wait(since: datetime) -> dict:
    """Seconds from queued to started, p50 and p95, over runs queued in the window that started."""
    return _rows(
        f"""
        SELECT count(*) AS runs,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - queued_at)) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM started_at - queued_at)) AS p95
        FROM {Run._meta.db_table}
        WHERE queued_at >= %(since)s AND started_at IS NOT NULL
        """,
        {"since": since},
    )[0]


def failing_tests(since: datetime) -> list[dict]:
    """Tests by how many of their results in the window failed (fail, error), most first
    (results of invocations that executed them, as in runs.history)."""
    return _rows(
        f"""
        SELECT r.project, n.unique_id, max(n.name) AS name, count(*) AS failures,
               max(r.id) AS last_run
        FROM {NodeResult._meta.db_table} n JOIN {Run._meta.db_table} r ON r.id = n.run_id
        WHERE n.resource_type = 'test' AND n.status = ANY(%(failed)s) AND n.command = ANY(%(executing)s)
              AND r.queued_at >= %(since)s
        GROUP BY r.project, n.unique_id
        ORDER BY failures DESC, n.unique_id LIMIT %(top)s
        """,
        {"since": since, "failed": sorted(FAILED_NODE_STATUSES), "executing": sorted(EXECUTING_COMMANDS), "top": TOP},
    )


def entities() -> list[EntityType]:
    """Every entity type with its mode and latest parity report (two queries)."""
    found = list(EntityType.objects.order_by("name"))
    with_latest_report(found)
    return found


def compute(window: Window, now: datetime | None = None) -> dict:
    """The window's aggregates, JSON-ready (one query each)."""
    since = (now or timezone.now()) - window.length
    overall, jobs = success_rates(since)
    recovered, by_job = recovery(since)
    for job in jobs:
        job["recovery"] = by_job.get(job["job_id"])
    models = slowest_models(since=since)
    return {
        "since": since.isoformat(),
        "overall": overall,
        "jobs": jobs,
        "recovery": recovered,
        "trend": duration_trend(since, window.bucket),
        "queue_wait": queue_wait(since),
        "failing_tests": failing_tests(since),
        "slowest_models": [{**m, "mean": float(m["mean"])} for m in models],
    }


def store(window: Window) -> DashboardSnapshot:
    started = timezone.now()
    numbers = compute(window, started)
    seconds = (timezone.now() - started).total_seconds()
    snapshot, _ = DashboardSnapshot.objects.update_or_create(
        window=window.key, defaults={"computed_at": started, "seconds": seconds, "numbers": numbers}
    )
    return snapshot


def refresh_snapshots() -> dict[str, float]:
    """The django-q2 task (every minute): each window's numbers; returns the seconds each took."""
    return {key: store(window).seconds for key, window in WINDOWS.items()}


def current(window: Window) -> DashboardSnapshot:
    """The window's snapshot, computed now when it is missing or older than MAX_AGE_SECONDS."""
    fresh = timezone.now() - timedelta(seconds=MAX_AGE_SECONDS)
    snapshot = DashboardSnapshot.objects.filter(window=window.key, computed_at__gte=fresh).first()
    return snapshot or store(window)


def dashboard(window: Window) -> dict:
    """What the page shows: the window's numbers, their charts, and the entities (read live)."""
    snapshot = current(window)
    numbers = snapshot.numbers
    overall, jobs, trend = numbers["overall"], numbers["jobs"], numbers["trend"]
    return {
        **numbers,
        "since": parse_datetime(numbers["since"]),
        "computed_at": snapshot.computed_at,
        "target": TARGET_SUCCESS_PERCENT,
        "below_target": overall["percent"] is not None and overall["percent"] < TARGET_SUCCESS_PERCENT,
        "success_chart": percent_bars(
            [(j["name"] or "runs outside jobs", j["percent"]) for j in jobs], line=TARGET_SUCCESS_PERCENT
        ),
        "trend_chart": line_chart([t["mean_seconds"] for t in trend], [t["bucket"] for t in trend]),
        "entities": entities(),
    }
