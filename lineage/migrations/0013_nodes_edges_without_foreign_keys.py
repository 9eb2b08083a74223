"""Nodes and edges without foreign keys in the database, nor an index of the snapshot alone: the
ingest's commit checked each of their rows, one by one, and every index of theirs begins with
the snapshot already (lineage.models.Node)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lineage", "0012_search_index_without_foreign_keys"),
    ]

    operations = [
        migrations.AlterField(
            model_name="edge",
            name="snapshot",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="edges",
                to="lineage.snapshot",
            ),
        ),
        migrations.AlterField(
            model_name="node",
            name="snapshot",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="nodes",
                to="lineage.snapshot",
            ),
        ),
    ]
