"""Runs remember when their task was last sent to the queue and how often (the reaper sends
a lost one again); the reaper's schedule points at its own module, runs.reaper."""

from __future__ import annotations

import django.utils.timezone
from django.db import migrations, models
from django.db.models import F

REAPER = "runs-reaper"


def point_reaper(func: str):
    def forward(apps, schema_editor):
        apps.get_model("django_q", "Schedule").objects.filter(name=REAPER).update(func=func)

    return forward


def enqueued_when_queued(apps, schema_editor):
    apps.get_model("runs", "Run").objects.update(enqueued_at=F("queued_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0006_run_source_is_the_audit_source"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="enqueue_attempts",
            field=models.PositiveSmallIntegerField(default=1, help_text="How many times it was sent to the queue"),
        ),
        migrations.AddField(
            model_name="run",
            name="enqueued_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text="When its task was last sent to the queue (the reaper may send it again)",
            ),
        ),
        migrations.RunPython(enqueued_when_queued, migrations.RunPython.noop),
        migrations.RunPython(point_reaper("runs.reaper.reap_lost_runs"), point_reaper("runs.worker.reap_lost_runs")),
    ]
