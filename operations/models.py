"""The dashboard's snapshots, the settled figures of /metrics, and service-level agreements
on jobs and sources, their misses and the notices sent about them. The SLA checker
(operations/sla_checker.py) writes misses; people define SLAs through operations/slas.py
(pages and API alike), which validates and audits."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from runs.models import Job, Run


class DashboardSnapshot(models.Model):
    """The dashboard's numbers for one window, computed every minute by the queue's scheduler
    (operations.dashboard.refresh_snapshots): aggregating 30 days of runs and node results
    takes seconds, reading them takes milliseconds."""

    window = models.CharField(max_length=10, unique=True)
    computed_at = models.DateTimeField()
    seconds = models.FloatField(help_text="how long computing them took")
    numbers = models.JSONField(encoder=DjangoJSONEncoder)

    def __str__(self) -> str:
        return f"dashboard {self.window} at {self.computed_at:%Y-%m-%d %H:%M:%S}"


WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]  # index = datetime.weekday()


def every_day() -> list[str]:
    return list(WEEKDAYS)


class SlaKind(models.TextChoices):
    DEADLINE = "deadline", "Succeeded by a time of day"
    DURATION = "duration", "Runs no longer than"
    FRESHNESS = "freshness", "Source is fresh"


class Sla(models.Model):
    """deadline: the job has a successful run that finished between the due day's local
    midnight and `deadline` in `time_zone`, on each of `weekdays`. duration: each run of the
    job takes at most `max_minutes`. freshness: the source's latest `dbt source freshness`
    verdict is not error."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=SlaKind.choices)
    project = models.CharField(max_length=100, help_text="the job's project, or the source's")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.CASCADE, related_name="slas")
    source_unique_id = models.CharField(max_length=500, blank=True, help_text="freshness: the source's unique_id")
    deadline = models.TimeField(null=True, blank=True, help_text="deadline: HH:MM in time_zone")
    time_zone = models.CharField(max_length=64, default="UTC")
    weekdays = ArrayField(models.CharField(max_length=3), default=every_day, help_text="deadline: the days it is due")
    max_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="duration: at most this long")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(
        default=timezone.now, help_text="last change; only slots after it count (an edit never backdates a miss)"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=SlaKind.values), name="sla_kind_valid"),
            models.CheckConstraint(
                condition=~Q(kind=SlaKind.DEADLINE) | Q(job__isnull=False, deadline__isnull=False),
                name="sla_deadline_has_job_and_time",
            ),
            models.CheckConstraint(
                condition=~Q(kind=SlaKind.DURATION) | Q(job__isnull=False, max_minutes__gte=1),
                name="sla_duration_has_job_and_minutes",
            ),
            models.CheckConstraint(
                condition=~Q(kind=SlaKind.FRESHNESS) | ~Q(source_unique_id=""), name="sla_freshness_has_source"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def terms(self) -> str:
        """The promise in words, for pages and notices."""
        if self.kind == SlaKind.DEADLINE:
            days = "every day" if len(self.weekdays) == len(WEEKDAYS) else ", ".join(self.weekdays)
            return f"job {self.job.name} succeeded by {self.deadline:%H:%M} {self.time_zone}, {days}"
        if self.kind == SlaKind.DURATION:
            return f"job {self.job.name} runs no longer than {self.max_minutes} min"
        return f"source {self.source_unique_id} of {self.project} is fresh"


class SlaMissQuerySet(models.QuerySet):
    def open(self) -> SlaMissQuerySet:
        return self.filter(recovered_at__isnull=True)


class SlaMiss(models.Model):
    """One missed slot: a deadline (slot_at = the deadline), an over-long run (slot_at = its
    start) or a stale source (slot_at = the first error verdict). Open until the SLA is met
    again; `late_success_at` when a deadline's own success came late (before the next due
    day began)."""

    sla = models.ForeignKey(Sla, on_delete=models.CASCADE, related_name="misses")
    slot_at = models.DateTimeField()
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detected_at = models.DateTimeField(default=timezone.now)
    reason = models.TextField()
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="when its alert was claimed for delivery")
    recovered_at = models.DateTimeField(null=True, blank=True)
    recovered_by = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    late_success_at = models.DateTimeField(null=True, blank=True)
    recovery_alerted_at = models.DateTimeField(null=True, blank=True)
    # Its alert's and recovery notices' deliveries (notice "sla.miss", "sla.recovery"); they go with the miss.
    deliveries = GenericRelation(
        "runs.NotificationDelivery", content_type_field="subject_type", object_id_field="subject_id"
    )

    objects = SlaMissQuerySet.as_manager()

    class Meta:
        ordering = ["-slot_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["sla", "slot_at"], name="slamiss_once_per_slot")]
        indexes = [models.Index(fields=["sla"], name="slamiss_open", condition=Q(recovered_at__isnull=True))]

    def __str__(self) -> str:
        return f"{self.sla} missed {self.slot_at:%Y-%m-%d %H:%M}"


class SlaNotice(models.TextChoices):
    MISS = "miss", "Missed"
    RECOVERY = "recovery", "Recovered"


# Settled run figures for GET /metrics: the runs that finished before a mark, added up once, so
# a scrape reads these few rows plus the runs finished since (operations/figures.py) instead of
# every run and every node result ever stored.


class FiguresMark(models.Model):
    """One row: RunFigures and NodeFailureFigures hold exactly the runs with finished_at before
    `settled_before`."""

    settled_before = models.DateTimeField()


class RunFigures(models.Model):
    """Settled runs of one project, job (0: none) and state: their count, and the count, sum and
    cumulative bucket counts (operations.figures' bounds) of their durations and queue waits."""

    project = models.CharField(max_length=100)
    job_id = models.BigIntegerField(help_text="runs_job.id, 0 for none (no foreign key: a deleted job's runs stay)")
    state = models.CharField(max_length=20)
    runs = models.BigIntegerField()
    duration_count = models.BigIntegerField()
    duration_sum = models.FloatField()
    duration_buckets = ArrayField(models.BigIntegerField())
    wait_count = models.BigIntegerField()
    wait_sum = models.FloatField()
    wait_buckets = ArrayField(models.BigIntegerField())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "job_id", "state"], name="runfigures_unique")]


class NodeFailureFigures(models.Model):
    """Failed node results of settled runs, by project and resource type. Pruning node results
    (RUN_RETENTION_DAYS) leaves these counts alone: the counter never goes back."""

    project = models.CharField(max_length=100)
    resource_type = models.CharField(max_length=30)
    failures = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "resource_type"], name="nodefailurefigures_unique")]
