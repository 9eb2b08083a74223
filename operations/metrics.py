"""What GET /metrics exposes, in Prometheus' text format (prometheus-client). Two kinds:

- Domain figures (runs, queue, workers, node failures, source freshness, SLA misses, entity
  modes and parity) are read from the metadata database at each scrape by DatabaseCollector,
  so every web process, on every host, answers the same numbers. The runs table is read once
  per scrape: one GROUP BY whose FILTER aggregates count each histogram bucket in SQL.
- Request figures (operations/request_metrics.py) are per process by nature; see there.

Counters derived from rows drop when rows are deleted: RUN_RETENTION_DAYS prunes node
results, so portal_node_failures_total falls at a prune (Prometheus reads that as a reset).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from django.db import connection
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from entities.models import EntityType, Mode, ParityReport
from operations import request_metrics
from runs.models import ACTIVE_STATES, FAILED_NODE_STATUSES, FINAL_STATES, Worker
from transformation_portal.db import viewer_statement_timeout

# Seconds: a run's duration (started → finished) and its wait in the queue (queued → started).
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600)
WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


def freshness_ages() -> list[tuple[str, str, float]]:
    """(project, source, age in seconds) of each source's latest freshness result. Empty until
    source freshness is ingested (issue 10, item 4); that work fills this function in."""
    return []


def sla_misses() -> list[tuple[str, int]]:
    """(SLA name, misses recorded) per SLA. Empty until SLAs exist (issue 10, item 5); that
    work fills this function in."""
    return []


def _bucket_sql(column: str, bounds: tuple[float, ...]) -> str:
    """count and sum of `column` (NULLs left out), then one cumulative count per bound."""
    filters = "".join(f", count(*) FILTER (WHERE {column} <= {float(bound)!r})" for bound in bounds)
    return f"count({column}), coalesce(sum({column}), 0){filters}"


# date_part is float8; extract() is numeric since PostgreSQL 14, three times slower here.
RUNS_SQL = f"""
    WITH r AS (
        SELECT project, job_id, state,
               date_part('epoch', finished_at - started_at) AS duration,
               date_part('epoch', started_at - queued_at) AS wait
        FROM runs_run
    )
    SELECT r.project, coalesce(j.name, ''), r.state, count(*),
           {_bucket_sql("duration", DURATION_BUCKETS)},
           {_bucket_sql("wait", WAIT_BUCKETS)}
    FROM r LEFT JOIN runs_job j ON j.id = r.job_id
    GROUP BY 1, 2, 3
"""
# Failed node results by project and resource type (the partial index runs 0012 adds).
NODE_FAILURES_SQL = """
    SELECT r.project, n.resource_type, count(*)
    FROM runs_noderesult n JOIN runs_run r ON r.id = n.run_id
    WHERE n.status = ANY(%s)
    GROUP BY 1, 2
"""


class Histograms:
    """Cumulative bucket counts, count and sum per label tuple, added up from SQL rows."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.series: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0.0] * (len(bounds) + 2))

    def add(self, labels: tuple[str, ...], count_sum_buckets: tuple[float, ...]) -> None:
        totals = self.series[labels]
        for i, value in enumerate(count_sum_buckets):
            totals[i] += value

    def family(self, name: str, documentation: str, label_names: list[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=label_names)
        for labels, (count, total, *cumulative) in sorted(self.series.items()):
            buckets = [(floatToGoString(bound), value) for bound, value in zip(self.bounds, cumulative, strict=True)]
            family.add_metric(list(labels), buckets + [("+Inf", count)], sum_value=total)
        return family


class DatabaseCollector(Collector):
    """The domain figures, read from the metadata database when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield from self.runs()
        yield self.node_failures()
        workers = GaugeMetricFamily("portal_workers_alive", "Queue worker clusters beating (Worker.objects.alive())")
        workers.add_metric([], Worker.objects.alive().count())
        yield workers
        yield from self.entities()
        freshness = GaugeMetricFamily(
            "portal_source_freshness_age_seconds",
            "Age of each source's newest row at its latest freshness check",
            labels=["project", "source"],
        )
        for project, source, age in freshness_ages():
            freshness.add_metric([project, source], age)
        yield freshness
        misses = CounterMetricFamily("portal_sla_misses", "SLA misses recorded", labels=["sla"])
        for sla, count in sla_misses():
            misses.add_metric([sla], count)
        yield misses

    def runs(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "portal_runs",
            "Runs that ended, by project, job ('' for none) and final state",
            labels=["project", "job", "state"],
        )
        active = GaugeMetricFamily(
            "portal_runs_active", "Runs queued, starting or running, by project and state", labels=["project", "state"]
        )
        durations, waits = Histograms(DURATION_BUCKETS), Histograms(WAIT_BUCKETS)
        depth = 0
        width = len(DURATION_BUCKETS) + 2
        with connection.cursor() as cursor:
            cursor.execute(RUNS_SQL)
            rows = cursor.fetchall()
        active_counts: dict[tuple[str, str], int] = defaultdict(int)
        for project, job, state, count, *figures in rows:
            if state in FINAL_STATES:
                total.add_metric([project, job, state], count)
            elif state in ACTIVE_STATES:
                active_counts[project, state] += count
            depth += count if state == "queued" else 0
            durations.add((project, job), figures[:width])
            waits.add((project,), figures[width:])
        for labels, count in sorted(active_counts.items()):
            active.add_metric(list(labels), count)
        queue = GaugeMetricFamily("portal_queue_depth", "Runs waiting in the queue (state queued)")
        queue.add_metric([], depth)
        yield from (total, active, queue)
        yield durations.family(
            "portal_run_duration_seconds", "Run duration, started to finished, of runs that ended", ["project", "job"]
        )
        yield waits.family("portal_run_queue_wait_seconds", "Queued to started, of runs that started", ["project"])

    def node_failures(self) -> Metric:
        family = CounterMetricFamily(
            "portal_node_failures",
            "Node results (models, tests, seeds, …) that failed: error, fail, runtime error",
            labels=["project", "resource_type"],
        )
        with connection.cursor() as cursor:
            cursor.execute(NODE_FAILURES_SQL, [sorted(FAILED_NODE_STATUSES)])
            for project, resource_type, count in cursor.fetchall():
                family.add_metric([project, resource_type], count)
        return family

    def entities(self) -> Iterator[Metric]:
        modes = GaugeMetricFamily(
            "portal_entity_mode", "1 for each entity's current mode, else 0", labels=["entity", "mode"]
        )
        for name, current in EntityType.objects.order_by("name").values_list("name", "mode"):
            for mode in Mode.values:
                modes.add_metric([name, mode], 1 if mode == current else 0)
        yield modes
        parity = GaugeMetricFamily(
            "portal_entity_parity_ratio",
            "Share of identical rows in each entity's latest parity report",
            labels=["entity"],
        )
        latest = (
            ParityReport.objects.select_related("entity")
            .order_by("entity_id", "-created_at", "-id")
            .distinct("entity_id")
        )
        for report in latest:
            parity.add_metric([report.entity.name], float(report.percent) / 100)
        yield parity


def exposition() -> bytes:
    """The scrape's body: domain figures (under the viewers' statement timeout) and this host's
    request figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    request_metrics.register(registry)
    with viewer_statement_timeout():
        return generate_latest(registry)
