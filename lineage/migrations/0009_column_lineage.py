"""Column lineage per snapshot (lineage/columns.py); 0010 makes its snapshot keys cascade."""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lineage", "0008_search_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="ColumnCoverage",
            fields=[
                (
                    "snapshot",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="column_coverage",
                        serialize=False,
                        to="lineage.snapshot",
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[("pending", "being computed"), ("done", "done"), ("failed", "failed")],
                        default="pending",
                        max_length=8,
                    ),
                ),
                ("resolved", models.PositiveIntegerField(default=0)),
                ("known", models.PositiveIntegerField(default=0)),
                (
                    "recomputed",
                    models.PositiveIntegerField(default=0, help_text="models whose SQL or upstream columns changed"),
                ),
                (
                    "copied",
                    models.PositiveIntegerField(
                        default=0, help_text="models taken unchanged from the previous snapshot"
                    ),
                ),
                ("seconds", models.FloatField(blank=True, null=True)),
                ("computed_at", models.DateTimeField(blank=True, null=True)),
                ("error", models.TextField(blank=True)),
            ],
        ),
        migrations.CreateModel(
            name="ColumnLineage",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("unique_id", models.TextField()),
                ("sql_hash", models.CharField(help_text="md5 of its compiled SQL", max_length=32)),
                (
                    "fingerprint",
                    models.CharField(
                        help_text="its SQL and its upstream relations' known columns: equal means the same result",
                        max_length=64,
                    ),
                ),
                (
                    "output_columns",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.TextField(),
                        default=list,
                        help_text="what its SQL outputs, in order (a schema for its children)",
                        size=None,
                    ),
                ),
                (
                    "columns",
                    models.JSONField(
                        default=list, help_text='[{"name", "upstream": [[unique_id, column]], "resolved", "note"}]'
                    ),
                ),
                (
                    "upstream_nodes",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.TextField(), default=list, help_text="every node its columns read", size=None
                    ),
                ),
                (
                    "note",
                    models.TextField(blank=True, help_text="why its SQL could not be read at all ('' when it could)"),
                ),
                (
                    "snapshot",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="lineage.snapshot"
                    ),
                ),
            ],
            options={
                "indexes": [
                    django.contrib.postgres.indexes.GinIndex(
                        fields=["upstream_nodes"], name="lineage_columnlineage_up_gin"
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("snapshot", "unique_id"), name="lineage_columnlineage_unique_per_snapshot"
                    )
                ],
            },
        ),
    ]
