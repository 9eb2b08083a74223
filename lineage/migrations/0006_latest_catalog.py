"""Each project keeps its latest catalog (lineage.models.Catalog), so a run without docs
generation no longer blanks every column type. The catalog files of earlier snapshots were
not kept: each project's newest snapshot with a catalog gives it back from the column types
merged into its nodes."""

from typing import Any

from django.db import migrations, models


def keep_the_latest_catalogs(apps, schema_editor) -> None:
    snapshots = apps.get_model("lineage", "Snapshot").objects.filter(has_catalog=True)
    nodes = apps.get_model("lineage", "Node").objects
    catalogs = apps.get_model("lineage", "Catalog").objects
    for project in snapshots.order_by("project").values_list("project", flat=True).distinct():
        snapshot = snapshots.filter(project=project).order_by("-ingested_at", "-id").first()
        columns: dict[str, dict[str, Any]] = {"nodes": {}, "sources": {}}
        rows = nodes.filter(snapshot=snapshot).values_list("unique_id", "resource_type", "columns")
        for unique_id, resource_type, node_columns in rows.iterator():
            typed = {
                column["name"]: {"name": column["name"], "type": column["data_type"], "index": index}
                for index, column in enumerate(node_columns, start=1)
                if column.get("data_type")
            }
            if typed:
                columns["sources" if resource_type == "source" else "nodes"][unique_id] = {"columns": typed}
        catalogs.create(project=project, columns=columns, generated_at=snapshot.ingested_at, run_id=snapshot.run_id)


class Migration(migrations.Migration):
    dependencies = [
        ("lineage", "0005_source_freshness"),
    ]

    operations = [
        migrations.CreateModel(
            name="Catalog",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("project", models.CharField(max_length=100, unique=True)),
                (
                    "columns",
                    models.JSONField(
                        help_text='{"nodes": {unique_id: {"columns": {name: {name, type, index}}}}, "sources": …}'
                    ),
                ),
                (
                    "generated_at",
                    models.DateTimeField(help_text="catalog.json's metadata.generated_at (else when it came)"),
                ),
                (
                    "run_id",
                    models.BigIntegerField(
                        blank=True, help_text="the run that generated it; none: an upload", null=True
                    ),
                ),
                ("stored_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.AddField(
            model_name="snapshot",
            name="catalog_generated_at",
            field=models.DateTimeField(
                blank=True, help_text="when dbt generated that catalog (it may be an earlier run's)", null=True
            ),
        ),
        migrations.AlterField(
            model_name="snapshot",
            name="has_catalog",
            field=models.BooleanField(default=False, help_text="its column types come from a catalog"),
        ),
        migrations.RunPython(keep_the_latest_catalogs, migrations.RunPython.noop),
    ]
