from __future__ import annotations

from rest_framework import serializers, viewsets

from accounts.models import Capability
from accounts.permissions import Requires
from audit.filters import AuditEventFilter
from audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id", "created_at", "actor_username", "action", "target_type", "target_id",
            "before", "after", "reason", "source", "request_id", "prev_hash", "hash",
        ]  # fmt: skip


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.order_by("-id")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    permission_classes = [Requires(Capability.READ)]
