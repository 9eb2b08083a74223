"""SLA notices' deliveries become runs.NotificationDelivery rows about their miss (notice
"sla.miss" or "sla.recovery", subject the SlaMiss): one model records every delivery. The
rows of SlaDelivery move there, keeping their fields and time; then SlaDelivery goes."""

from __future__ import annotations

from django.db import migrations

BATCH = 2000
COPIED = ("target_id", "channel", "destination", "status", "attempts", "response_status", "error", "created_at")


def _miss_type(apps):
    ContentType = apps.get_model("contenttypes", "ContentType")
    return ContentType.objects.get_or_create(app_label="operations", model="slamiss")[0]


def move_in(apps, schema_editor):
    SlaDelivery = apps.get_model("operations", "SlaDelivery")
    NotificationDelivery = apps.get_model("runs", "NotificationDelivery")
    if not SlaDelivery.objects.exists():
        return
    miss_type = _miss_type(apps)
    rows = SlaDelivery.objects.order_by("id").values("miss_id", "notice", *COPIED)
    moved = [
        NotificationDelivery(
            notice=f"sla.{row.pop('notice')}", subject_type=miss_type, subject_id=row.pop("miss_id"), **row
        )
        for row in rows.iterator(chunk_size=BATCH)
    ]
    NotificationDelivery.objects.bulk_create(moved, batch_size=BATCH)


def move_out(apps, schema_editor):
    SlaDelivery = apps.get_model("operations", "SlaDelivery")
    NotificationDelivery = apps.get_model("runs", "NotificationDelivery")
    ContentType = apps.get_model("contenttypes", "ContentType")
    miss_type = ContentType.objects.filter(app_label="operations", model="slamiss").first()
    if miss_type is None:
        return
    theirs = NotificationDelivery.objects.filter(subject_type=miss_type)
    rows = theirs.order_by("id").values("subject_id", "notice", *COPIED)
    SlaDelivery.objects.bulk_create(
        [
            SlaDelivery(miss_id=row.pop("subject_id"), notice=row.pop("notice").removeprefix("sla."), **row)
            for row in rows.iterator(chunk_size=BATCH)
        ],
        batch_size=BATCH,
    )
    theirs.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0004_metrics_figures"),
        ("runs", "0016_notification_delivery_subject"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(move_in, move_out),
        migrations.DeleteModel(name="SlaDelivery"),
    ]
