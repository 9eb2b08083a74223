import secrets

from django.db import migrations, models


def give_each_target_a_secret(apps, schema_editor):
    """Targets made before signing get a secret nobody has seen: webhooks are signed from now
    on, and whoever verifies sets a known one (PATCH /api/v1/notification-targets/{id}/)."""
    NotificationTarget = apps.get_model("runs", "NotificationTarget")
    for target in NotificationTarget.objects.filter(secret=""):
        target.secret = secrets.token_urlsafe(32)
        target.save(update_fields=["secret"])


class Migration(migrations.Migration):
    dependencies = [("runs", "0011_jobs_and_environments")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="alert_on_warn",
            field=models.BooleanField(
                default=False, help_text="a success with warn-severity test failures alerts the on-failure targets"
            ),
        ),
        migrations.AddField(
            model_name="notificationtarget",
            name="secret",
            field=models.CharField(
                default="", help_text="HMAC-SHA256 key of the webhook's X-Portal-Signature", max_length=200
            ),
            preserve_default=False,
        ),
        migrations.RunPython(give_each_target_a_secret, migrations.RunPython.noop),
    ]
