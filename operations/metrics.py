"""What GET /metrics exposes, in Prometheus' text format (prometheus-client). Two kinds:

- Domain figures (runs, queue, workers, node failures, source freshness, SLA misses, entity
  modes and parity) are read from the metadata database at each scrape by DatabaseCollector,
  so every web process, on every host, answers the same numbers. Runs and node failures come
  from operations/figures.py (settled figures plus the runs finished since, buckets counted
  in SQL); the rest are small tables read whole.
- Request figures (operations/request_metrics.py) are per process by nature; see there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from entities.models import EntityType, Mode, ParityReport
from kernel.db import viewer_statement_timeout
from lineage import freshness
from operations import request_metrics
from operations.figures import DURATION_BUCKETS, WAIT_BUCKETS, failure_figures, reading_mark, run_figures, settle
from operations.models import Sla
from runs.models import ACTIVE_STATES, FINAL_STATES, Worker


def freshness_ages() -> list[tuple[str, str, float]]:
    """(project, source, age in seconds now) of each source's latest freshness result; a
    runtime error has no age and no series."""
    rows = ((row.project, row.source, row.age_now()) for row in freshness.latest())
    return [(project, source, age) for project, source, age in rows if age is not None]


def sla_misses() -> list[tuple[str, int]]:
    """(SLA name, misses recorded) per SLA, 0 for one never missed."""
    return list(Sla.objects.annotate(missed=Count("misses")).order_by("name").values_list("name", "missed"))


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
    """The domain figures, read from the metadata database when Prometheus scrapes; runs and
    node failures settled at `mark` (operations.figures.reading_mark()) and since."""

    def __init__(self, mark: datetime | None) -> None:
        self.mark = mark

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
        ended = CounterMetricFamily(
            "portal_runs",
            "Runs that ended, by project, job ('' for none) and final state",
            labels=["project", "job", "state"],
        )
        active = GaugeMetricFamily(
            "portal_runs_active", "Runs queued, starting or running, by project and state", labels=["project", "state"]
        )
        durations, waits = Histograms(DURATION_BUCKETS), Histograms(WAIT_BUCKETS)
        finals: dict[tuple[str, str, str], int] = defaultdict(int)
        actives: dict[tuple[str, str], int] = defaultdict(int)
        for project, job, state, runs, *figures in run_figures(self.mark):
            duration_count, duration_sum, duration_buckets, wait_count, wait_sum, wait_buckets = figures
            if state in FINAL_STATES:
                finals[project, job, state] += runs
            elif state in ACTIVE_STATES:
                actives[project, state] += runs
            durations.add((project, job), (duration_count, duration_sum, *duration_buckets))
            waits.add((project,), (wait_count, wait_sum, *wait_buckets))
        for labels, count in sorted(finals.items()):
            ended.add_metric(list(labels), count)
        for labels, count in sorted(actives.items()):
            active.add_metric(list(labels), count)
        queue = GaugeMetricFamily("portal_queue_depth", "Runs waiting in the queue (state queued)")
        queue.add_metric([], sum(count for (_, state), count in actives.items() if state == "queued"))
        yield from (ended, active, queue)
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
        for project, resource_type, count in failure_figures(self.mark):
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
    with viewer_statement_timeout():  # a transaction of its own, committed before the scrape's
        settle()
    with viewer_statement_timeout():
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DatabaseCollector(reading_mark()))
        request_metrics.register(registry)
        return generate_latest(registry)
