from __future__ import annotations

from rest_framework import serializers

from runs.models import NodeResult, Run


class RunSerializer(serializers.ModelSerializer):
    triggered_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    title = serializers.CharField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True)

    class Meta:
        model = Run
        fields = [
            "id", "project", "kind", "title", "command", "select", "exclude", "vars", "full_refresh",
            "target", "threads", "timeout_seconds", "params", "source", "triggered_by", "rerun_of",
            "state", "reason", "queued_at", "started_at", "finished_at", "duration_seconds",
            "cancel_requested_at", "exit_code", "worker", "heartbeat_at", "nodes_total", "nodes_done",
            "nodes_failed", "log_lines",
        ]  # fmt: skip
        read_only_fields = fields


class RunCreateSerializer(serializers.Serializer):
    project = serializers.CharField(max_length=100)
    command = serializers.CharField(max_length=40, required=False, default="build")
    select = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
    exclude = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)
    vars = serializers.JSONField(required=False, default=dict)
    full_refresh = serializers.BooleanField(required=False, default=False)
    timeout_seconds = serializers.IntegerField(required=False, allow_null=True, default=None)


class NodeResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeResult
        fields = [
            "unique_id", "name", "resource_type", "status", "started_at", "finished_at",
            "execution_time", "rows_affected", "failures", "message", "compiled_path",
        ]  # fmt: skip
        read_only_fields = fields
