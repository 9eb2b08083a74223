from __future__ import annotations

from django.db import migrations

ENTITY_TYPES = [
    {
        "name": "users",
        "description": "The directory of people: one row per normalised email, duplicate accounts collapsed.",
        "dbt_project": "inventory_transforms",
        "dbt_selector": "+fct_users",
        "key_column": "user_id",
        "serving_view": "serving.users",
    },
    {
        "name": "applications",
        "description": "The application inventory with each owner resolved against the directory.",
        "dbt_project": "inventory_transforms",
        "dbt_selector": "+fct_applications",
        "key_column": "application_id",
        "serving_view": "serving.applications",
    },
]


def create(apps, schema_editor):
    EntityType = apps.get_model("entities", "EntityType")
    for fields in ENTITY_TYPES:
        EntityType.objects.get_or_create(name=fields["name"], defaults=fields)


def remove(apps, schema_editor):
    EntityType = apps.get_model("entities", "EntityType")
    EntityType.objects.filter(name__in=[e["name"] for e in ENTITY_TYPES]).delete()


class Migration(migrations.Migration):
    dependencies = [("entities", "0001_entity_types_modes_requests_parity")]
    operations = [migrations.RunPython(create, remove)]
