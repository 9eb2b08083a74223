# Re-creates run_finished_only_when_final with the final states in a stable (sorted)
# order. 0001 took them from a frozenset, whose order changes per process, so every
# `makemigrations` saw a change. (Named by the first makemigrations that noticed it; the
# entities migrations depend on this name.)

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_runs_and_node_results"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="run", name="run_finished_only_when_final"),
        migrations.AddConstraint(
            model_name="run",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("finished_at__isnull", True),
                    ("state__in", ["cancelled", "error", "failed", "success", "timed_out"]),
                    _connector="OR",
                ),
                name="run_finished_only_when_final",
            ),
        ),
    ]
