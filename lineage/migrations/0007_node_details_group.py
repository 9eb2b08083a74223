"""Exposures, metrics, semantic models, saved queries, groups and models' contracts, access and
versions get pages: each node keeps what its kind has of its own (Node.details) and its group."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lineage", "0006_latest_catalog"),
    ]

    operations = [
        migrations.AddField(
            model_name="node",
            name="details",
            field=models.JSONField(
                default=dict,
                help_text="What its kind has of its own, as the manifest has it: an exposure's type, owner, maturity "
                "and url; a metric's type, label, type_params and filter; a semantic model's model, entities, "
                "dimensions and measures; a saved query's query_params and exports; a group's owner; a model's "
                "access, group, latest_version and contract (see dbtlib.manifest._details)",
            ),
        ),
        migrations.AddField(
            model_name="node",
            name="group_name",
            field=models.TextField(blank=True, help_text="The group it belongs to (config.group), if any"),
        ),
        migrations.AddIndex(
            model_name="node",
            index=models.Index(
                condition=models.Q(("group_name", ""), _negated=True),
                fields=["snapshot", "group_name"],
                name="lineage_node_group_idx",
            ),
        ),
    ]
