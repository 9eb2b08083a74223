from __future__ import annotations

from rest_framework import serializers

from operations.models import Sla, SlaKind, SlaMiss


class SlaSerializer(serializers.ModelSerializer):
    """Loose types on purpose: operations.slas validates every field with its own message."""

    kind = serializers.ChoiceField(choices=SlaKind.choices)
    job = serializers.IntegerField(source="job_id", required=False, allow_null=True, help_text="deadline, duration")
    project = serializers.CharField(required=False, allow_blank=True, help_text="freshness (a job SLA: the job's)")
    source_unique_id = serializers.CharField(
        required=False, allow_blank=True, help_text="freshness: the source's unique_id"
    )
    deadline = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="deadline: HH:MM in time_zone"
    )
    time_zone = serializers.CharField(required=False, allow_blank=True, help_text="IANA name, e.g. Europe/Paris")
    weekdays = serializers.ListField(
        child=serializers.CharField(max_length=10), required=False, help_text="mon … sun; default every day"
    )
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = Sla
        fields = [
            "id", "name", "kind", "job", "project", "source_unique_id", "deadline", "time_zone", "weekdays",
            "max_minutes", "enabled", "created_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "max_minutes": {"min_value": None, "max_value": None, "help_text": "duration: at most this long"}
        }
        validators = []

    def to_representation(self, instance: Sla) -> dict:
        data = super().to_representation(instance)
        data["deadline"] = f"{instance.deadline:%H:%M}" if instance.deadline else None
        return data


class SlaMissSerializer(serializers.ModelSerializer):
    class Meta:
        model = SlaMiss
        fields = [
            "id", "sla", "slot_at", "run", "detected_at", "reason", "alerted_at", "recovered_at", "recovered_by",
            "late_success_at", "recovery_alerted_at",
        ]  # fmt: skip
        read_only_fields = fields
