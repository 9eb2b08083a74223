"""runs/workers.py became runs/registry.py (the worker registry, told apart from the queue
task runs/worker.py): the help text naming it follows. No schema change."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0016_notification_delivery_subject"),
    ]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="process_group",
            field=models.IntegerField(
                blank=True,
                help_text="dbt's process group id on the worker host; kept on a run the reaper ended elsewhere, so its "
                "worker's next start stops what is left (runs.registry.stop_leftover_dbt)",
                null=True,
            ),
        ),
    ]
