"""The site search's index of the current snapshots (lineage.search), filled for those
already stored."""

import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
from django.db import migrations, models

# The statements of lineage.search.index_current() as they were written, over every current
# snapshot (Django creates the indexes after them, at the end of the migration).
INDEX = (
    """INSERT INTO lineage_searchname (node_id, snapshot_id, name, is_test)
    SELECT n.id, n.snapshot_id, lower(n.name), n.resource_type IN ('test', 'unit_test')
    FROM lineage_node n JOIN lineage_snapshot s ON s.id = n.snapshot_id AND s.is_current""",
    """INSERT INTO lineage_searchterm (snapshot_id, node_id, field, term, node_name)
    SELECT DISTINCT n.snapshot_id, NULL::bigint, 1, lower(tag), tag
    FROM lineage_node n JOIN lineage_snapshot s ON s.id = n.snapshot_id AND s.is_current, unnest(n.tags) AS tag""",
    """INSERT INTO lineage_searchterm (snapshot_id, node_id, field, term, node_name)
    SELECT DISTINCT n.snapshot_id, n.id, 2, lower(tag), lower(n.name)
    FROM lineage_node n JOIN lineage_snapshot s ON s.id = n.snapshot_id AND s.is_current, unnest(n.tags) AS tag""",
    """INSERT INTO lineage_searchterm (snapshot_id, node_id, field, term, node_name)
    SELECT DISTINCT n.snapshot_id, n.id, 3, lower(col->>'name'), lower(n.name)
    FROM lineage_node n JOIN lineage_snapshot s ON s.id = n.snapshot_id AND s.is_current,
         jsonb_array_elements(CASE WHEN jsonb_typeof(n.columns) = 'array' THEN n.columns ELSE '[]' END) AS col
    WHERE coalesce(col->>'name', '') <> ''""",
    """INSERT INTO lineage_searchterm (snapshot_id, node_id, field, term, node_name, document)
    SELECT snapshot_id, id, 4, '', lower(name), to_tsvector('simple', doc)
    FROM (
        SELECT n.snapshot_id, n.id, n.name, n.description || ' ' || coalesce(
            (SELECT string_agg(col->>'description', ' ') FROM jsonb_array_elements(
                CASE WHEN jsonb_typeof(n.columns) = 'array' THEN n.columns ELSE '[]'::jsonb END) AS col), ''
        ) AS doc
        FROM lineage_node n JOIN lineage_snapshot s ON s.id = n.snapshot_id AND s.is_current
    ) AS described
    WHERE doc ~ '\\w'""",
    "ANALYZE lineage_searchname, lineage_searchterm",
)


class Migration(migrations.Migration):
    dependencies = [
        ("lineage", "0007_node_details_group"),
    ]

    operations = [
        migrations.CreateModel(
            name="SearchName",
            fields=[
                (
                    "node",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="lineage.node",
                    ),
                ),
                ("name", models.TextField(db_collation="C")),
                ("is_test", models.BooleanField(default=False, help_text="tests rank after the other nodes")),
                (
                    "snapshot",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="lineage.snapshot"
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["is_test", "name"], name="lineage_searchname_name_idx")],
            },
        ),
        migrations.CreateModel(
            name="SearchTerm",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "field",
                    models.PositiveSmallIntegerField(
                        choices=[(1, "tag"), (2, "tagged node"), (3, "column"), (4, "description")]
                    ),
                ),
                ("term", models.TextField(blank=True, db_collation="C")),
                (
                    "node_name",
                    models.TextField(
                        blank=True, db_collation="C", help_text="lower case; a tag row: the tag as written"
                    ),
                ),
                ("document", django.contrib.postgres.search.SearchVectorField(blank=True, null=True)),
                (
                    "node",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="lineage.node",
                    ),
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
                    models.Index(fields=["field", "term", "node_name"], name="lineage_searchterm_term_idx"),
                    django.contrib.postgres.indexes.GinIndex(fields=["document"], name="lineage_searchterm_doc_gin"),
                ],
            },
        ),
        migrations.RunSQL(INDEX, migrations.RunSQL.noop),
    ]
