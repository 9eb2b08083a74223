"""A mode version counter on EntityType (one per applied mode change), stored on each mode
request: a request is stale once the entity's mode has changed since, even back to the mode
it was made from. Existing rows: the counter is the number of applied changes; a pending
request made after the latest change gets that number, older ones stay stale."""

from django.db import migrations, models
from django.db.models import Count


def count_mode_changes(apps, schema_editor):
    EntityType = apps.get_model("entities", "EntityType")
    ModeChangeRequest = apps.get_model("entities", "ModeChangeRequest")
    for entity in EntityType.objects.annotate(changes=Count("mode_changes")):
        EntityType.objects.filter(pk=entity.pk).update(mode_version=entity.changes)
        pending = ModeChangeRequest.objects.filter(entity=entity, status="pending")
        if entity.mode_changed_at is not None:
            pending = pending.filter(requested_at__gt=entity.mode_changed_at)
        pending.update(from_mode_version=entity.changes)


class Migration(migrations.Migration):
    dependencies = [
        ("entities", "0004_request_withdrawal"),
    ]

    operations = [
        migrations.AddField(
            model_name="entitytype",
            name="mode_version",
            field=models.PositiveIntegerField(
                default=0, help_text="Counts applied mode changes: a request made before the latest one is stale"
            ),
        ),
        migrations.AddField(
            model_name="modechangerequest",
            name="from_mode_version",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(count_mode_changes, migrations.RunPython.noop),
    ]
