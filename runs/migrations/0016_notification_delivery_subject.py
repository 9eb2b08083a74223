"""One delivery model for every notice: a delivery is about a run (notice "run", as before)
or about a row of a higher layer (`subject`, a generic reference, with that layer's notice
name: an SLA miss's "sla.miss" and "sla.recovery"). operations 0005 moves SLA deliveries in."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("runs", "0015_noderesult_command"),
    ]

    operations = [
        migrations.AddField(
            model_name="notificationdelivery",
            name="notice",
            field=models.CharField(default="run", help_text="run, or the subject's notice: sla.miss, …", max_length=30),
        ),
        migrations.AddField(
            model_name="notificationdelivery",
            name="subject_id",
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="notificationdelivery",
            name="subject_type",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="contenttypes.contenttype",
            ),
        ),
        migrations.AlterField(
            model_name="notificationdelivery",
            name="run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="notifications",
                to="runs.run",
            ),
        ),
        migrations.AddIndex(
            model_name="notificationdelivery",
            index=models.Index(fields=["subject_type", "subject_id"], name="notificationdelivery_subject"),
        ),
        migrations.AddConstraint(
            model_name="notificationdelivery",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("run__isnull", False),
                    models.Q(("subject_id__isnull", False), ("subject_type__isnull", False)),
                    _connector="OR",
                ),
                name="notificationdelivery_has_a_subject",
            ),
        ),
    ]
