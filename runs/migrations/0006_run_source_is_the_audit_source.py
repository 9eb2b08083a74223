"""Run.source takes the audit's door values (audit.models.Source): ui → web, and entity → web
(an entity refresh is a run kind, triggered from a page or the API, not a door of its own).
Reversed: web → ui, except entity refreshes, which go back to entity; the doors the old set
lacked (admin, command, worker, system) become ui."""

from django.db import migrations, models
from django.db.models import Q

SOURCES = ["web", "api", "admin", "command", "schedule", "worker", "system"]
OLD_SOURCES = ["ui", "api", "schedule", "entity"]
ENTITY_REFRESH_KIND = "entity-refresh"


def forward(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    Run.objects.filter(source__in=["ui", "entity"]).update(source="web")


def backward(apps, schema_editor):
    Run = apps.get_model("runs", "Run")
    Run.objects.filter(source="web", kind=ENTITY_REFRESH_KIND).update(source="entity")
    Run.objects.exclude(source__in=OLD_SOURCES).update(source="ui")


class Migration(migrations.Migration):
    dependencies = [("runs", "0005_run_state_recent_index")]

    operations = [
        migrations.RemoveConstraint(model_name="run", name="run_source_valid"),
        migrations.AlterField(
            model_name="run",
            name="source",
            field=models.CharField(
                choices=[
                    ("web", "Web page"),
                    ("api", "REST API"),
                    ("admin", "Django admin"),
                    ("command", "Management command"),
                    ("schedule", "Schedule"),
                    ("worker", "Queue worker"),
                    ("system", "System"),
                ],
                help_text="The door the run came through",
                max_length=20,
            ),
        ),
        migrations.RunPython(forward, backward),
        migrations.AddConstraint(
            model_name="run",
            constraint=models.CheckConstraint(condition=Q(source__in=SOURCES), name="run_source_valid"),
        ),
    ]
