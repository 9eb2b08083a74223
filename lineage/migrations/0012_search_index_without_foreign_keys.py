"""The site search's index without foreign keys in the database: PostgreSQL checked each of its
rows at the ingest's commit, one by one (lineage.models.SearchName)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lineage", "0011_git_projects"),
    ]

    operations = [
        migrations.AlterField(
            model_name="searchname",
            name="node",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                primary_key=True,
                related_name="+",
                serialize=False,
                to="lineage.node",
            ),
        ),
        migrations.AlterField(
            model_name="searchname",
            name="snapshot",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="lineage.snapshot",
            ),
        ),
        migrations.AlterField(
            model_name="searchterm",
            name="node",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="lineage.node",
            ),
        ),
        migrations.AlterField(
            model_name="searchterm",
            name="snapshot",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="lineage.snapshot",
            ),
        ),
    ]
