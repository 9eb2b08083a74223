from __future__ import annotations

from django.db import migrations

CHECKER = "operations-sla-checker"


def create_checker(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=CHECKER,
        defaults={"func": "operations.sla_checker.check_slas", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_checker(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=CHECKER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0002_sla"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_checker, delete_checker)]
