"""Settled run figures for GET /metrics: the runs that finished before a mark, added up once, so
a scrape reads these few rows plus the runs finished since (operations/figures.py) instead of
every run and every node result ever stored."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models


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
