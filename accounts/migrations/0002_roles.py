from __future__ import annotations

from django.db import migrations

from accounts.roles import sync_roles


def forward(apps, schema_editor) -> None:
    sync_roles(
        apps.get_model("auth", "Group"),
        apps.get_model("auth", "Permission"),
        apps.get_model("contenttypes", "ContentType"),
    )


def backward(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=["viewer", "operator", "approver", "admin"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forward, backward)]
