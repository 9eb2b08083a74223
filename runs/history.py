"""A node's history across runs (its NodeResult rows: status, failures, message, time) and
the aggregates built on it: the flaky flag of a test and the slowest models of a project.

History is the results of invocations that executed nodes (build, run, test, seed,
snapshot): a compile or docs generate reports every node it compiled as `success` in next to
no time, and source freshness has its own history (lineage.freshness). History spans what
retention keeps: node results of runs finished more than
RUN_RETENTION_DAYS ago are pruned (runs/retention.py). A result's order is its run's id,
then its step (run ids grow with queue time, and a retry is a later run)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Avg, Count, F, Max, QuerySet
from django.db.models.functions import Coalesce

from runs.charts import LineChart, line_chart
from runs.models import NodeResult, NodeStatus, Run

HISTORY_LENGTH = 30
FLAKY_WINDOW = 10  # a test is flaky when, in its last FLAKY_WINDOW results,
FLAKY_FLIPS = 3  # it changed between passing and not passing at least FLAKY_FLIPS times
PASSING = frozenset({NodeStatus.PASS, NodeStatus.SUCCESS})
NOT_PASSING = frozenset({NodeStatus.FAIL, NodeStatus.ERROR, NodeStatus.WARN, NodeStatus.RUNTIME_ERROR})
SLOWEST_RUNS = 50
SLOWEST_LIMIT = 10


def results_of(project: str, unique_id: str) -> QuerySet[NodeResult]:
    """The node's finished results in `project`, newest first, each with `at` (when it ended:
    the node's own end, else its run's)."""
    return (
        NodeResult.objects.executed()
        .filter(unique_id=unique_id, run__project=project)
        .exclude(status=NodeStatus.RUNNING)
        .annotate(at=Coalesce("finished_at", "run__finished_at", "run__queued_at"))
        .order_by("-run_id", "-step")
    )


def count_flips(statuses: list[str]) -> int:
    """How often consecutive results changed between passing and not passing (skipped and
    other statuses are not a result either way and are left out)."""
    outcomes = [status in PASSING for status in statuses if status in PASSING or status in NOT_PASSING]
    return sum(1 for before, after in zip(outcomes, outcomes[1:], strict=False) if before != after)


@dataclass(frozen=True)
class NodeHistory:
    project: str
    unique_id: str
    results: list[NodeResult]  # newest first, at most HISTORY_LENGTH

    @property
    def flips(self) -> int:
        return count_flips([r.status for r in self.results[:FLAKY_WINDOW]])

    @property
    def flaky(self) -> bool:
        return self.flips >= FLAKY_FLIPS

    @property
    def oldest_first(self) -> list[NodeResult]:
        return self.results[::-1]

    @property
    def timed(self) -> list[NodeResult]:
        """Results with a duration, oldest first (the chart's points and its table's rows)."""
        return [r for r in self.oldest_first if r.execution_time is not None]

    @property
    def duration_chart(self) -> LineChart | None:
        timed = self.timed
        return line_chart([r.execution_time for r in timed], [f"run {r.run_id}" for r in timed])


def node_history(project: str, unique_id: str, limit: int = HISTORY_LENGTH) -> NodeHistory:
    """The node's last `limit` results (one query)."""
    return NodeHistory(project, unique_id, list(results_of(project, unique_id)[:limit]))


def slowest_models(*, since: datetime | None = None, project: str | None = None, limit: int = SLOWEST_LIMIT) -> list:
    """Models by mean execution time, slowest first, with their slowest time and result count:
    over the results of runs queued since `since` (the dashboard's window), or, for a
    project's page, over its last SLOWEST_RUNS runs (bounded however many runs it has)."""
    rows = NodeResult.objects.executed().filter(resource_type="model", execution_time__isnull=False)
    if since is not None:
        rows = rows.filter(run__queued_at__gte=since)
    if project is not None:
        recent = Run.objects.filter(project=project).order_by("-queued_at").values("id")[:SLOWEST_RUNS]
        rows = rows.filter(run__project=project, run_id__in=recent)
    return list(
        rows.values("unique_id", "name", project_name=F("run__project"))
        .annotate(mean=Avg("execution_time"), slowest=Max("execution_time"), results=Count("id"))
        .order_by("-mean", "unique_id")[:limit]
    )
