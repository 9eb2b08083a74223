"""The snapshot keys of column lineage's two tables cascade in the database too: the worker
computes a snapshot's rows while a later ingest may prune that snapshot, and PostgreSQL then
deletes the rows that committed after Django's own cascade looked. (Its own migration: the
foreign keys 0009 creates exist only once that migration ends.)"""

from django.db import migrations

CASCADING = (("lineage_columnlineage", "snapshot_id"), ("lineage_columncoverage", "snapshot_id"))
CASCADE = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT conname FROM pg_constraint
                WHERE conrelid = '{table}'::regclass AND contype = 'f' LOOP
        EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', name);
    END LOOP;
END $$;
ALTER TABLE {table} ADD CONSTRAINT {table}_snapshot_cascade FOREIGN KEY ({column})
    REFERENCES lineage_snapshot (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
"""


class Migration(migrations.Migration):
    dependencies = [("lineage", "0009_column_lineage")]

    operations = [
        migrations.RunSQL(
            [CASCADE.format(table=table, column=column) for table, column in CASCADING],
            reverse_sql=migrations.RunSQL.noop,
        )
    ]
