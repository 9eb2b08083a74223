"""The site search's tagged-node and column rows: one per (snapshot, tag or column name)
holding its nodes by name, instead of one per node and name (the current snapshots' rows are
regrouped); its term index leaves the descriptions out."""

import django.contrib.postgres.fields
from django.db import migrations, models

GROUPED = "2, 3"  # SearchField.TAGGED, SearchField.COLUMN

REGROUP = f"""
    INSERT INTO lineage_searchterm (snapshot_id, node_id, field, term, node_name, nodes)
    SELECT snapshot_id, NULL, field, term, '', array_agg(node_id ORDER BY node_name)
    FROM lineage_searchterm WHERE field IN ({GROUPED}) AND node_id IS NOT NULL GROUP BY snapshot_id, field, term;
    DELETE FROM lineage_searchterm WHERE field IN ({GROUPED}) AND node_id IS NOT NULL;
"""
UNGROUP = f"""
    INSERT INTO lineage_searchterm (snapshot_id, node_id, field, term, node_name)
    SELECT t.snapshot_id, n.id, t.field, t.term, lower(n.name)
    FROM lineage_searchterm t CROSS JOIN LATERAL unnest(t.nodes) AS u(node_id) JOIN lineage_node n ON n.id = u.node_id
    WHERE t.field IN ({GROUPED}) AND t.nodes IS NOT NULL;
    DELETE FROM lineage_searchterm WHERE field IN ({GROUPED}) AND nodes IS NOT NULL;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("lineage", "0014_explorer_layout"),
    ]

    operations = [
        migrations.AddField(
            model_name="searchterm",
            name="nodes",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.BigIntegerField(), blank=True, null=True, size=None
            ),
        ),
        migrations.RunSQL(REGROUP, UNGROUP),
        migrations.RemoveIndex(model_name="searchterm", name="lineage_searchterm_term_idx"),
        migrations.AddIndex(
            model_name="searchterm",
            index=models.Index(
                condition=models.Q(("field", 4), _negated=True),
                fields=["field", "term", "node_name"],
                name="lineage_searchterm_term_idx",
            ),
        ),
    ]
