from __future__ import annotations

from django.db import migrations

REAPER = "runs-reaper"


def create_reaper(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=REAPER,
        defaults={"func": "runs.worker.reap_lost_runs", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_reaper(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=REAPER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_runs_and_node_results"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_reaper, delete_reaper)]
