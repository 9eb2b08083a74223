from __future__ import annotations

from django.db import migrations, models

# A new column with a constant default is DDL: the append-only trigger (0002) is not fired,
# and existing rows keep an empty label (their hashes leave it out).


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="target_label",
            field=models.CharField(
                blank=True, help_text="the target's name (str()) when the event was recorded", max_length=200
            ),
        ),
    ]
