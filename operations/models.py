from __future__ import annotations

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


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
