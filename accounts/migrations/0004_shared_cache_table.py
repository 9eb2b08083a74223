"""The table of the database cache every web process shares (settings.CACHES when REDIS_URL
is unset): the bad-token throttle counts there. Made whatever the configured backend, so
dropping Redis later needs no extra step."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor) -> None:
    call_command("createcachetable", settings.CACHE_TABLE, database=schema_editor.connection.alias, verbosity=0)


def drop_cache_table(apps, schema_editor) -> None:
    schema_editor.execute(f"DROP TABLE IF EXISTS {schema_editor.quote_name(settings.CACHE_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_revoked_token_stays_revoked")]

    operations = [migrations.RunPython(create_cache_table, drop_cache_table)]
