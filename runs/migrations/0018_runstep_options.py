"""A job step's flags beyond select, exclude, vars and full refresh (--selector,
--indirect-selection, --resource-type, --exclude-resource-type, --fail-fast, --warn-error,
--empty), kept validated so the worker builds the argv from them."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0017_worker_registry_help_text"),
    ]

    operations = [
        migrations.AddField(
            model_name="runstep",
            name="options",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="its other validated flags (dbtlib.steps.OPTION_NAMES), e.g. selector, fail_fast",
            ),
        ),
    ]
