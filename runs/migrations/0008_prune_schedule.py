from __future__ import annotations

from django.db import migrations

PRUNE = "runs-prune"


def create_prune(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=PRUNE,
        defaults={"func": "runs.retention.scheduled_prune", "schedule_type": "D", "repeats": -1},
    )


def delete_prune(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=PRUNE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0007_run_enqueued_at_attempts_reaper_module"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_prune, delete_prune)]
