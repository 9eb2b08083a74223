"""/api/v1/slas/ (SLAs, changed through operations.slas: validated and audited) and
/api/v1/sla-misses/ (what the checker recorded)."""

from __future__ import annotations

from rest_framework import viewsets

from accounts.models import Capability
from accounts.permissions import Requires
from operations.models import Sla, SlaMiss
from operations.serializers import SlaMissSerializer, SlaSerializer
from operations.slas import create_sla, delete_sla, update_sla
from runs.api import ManagedViewSet


class SlaViewSet(ManagedViewSet):
    """Viewer and up read; whoever manages schedules (operator, admin) creates, changes and deletes."""

    queryset = Sla.objects.select_related("created_by", "job")
    serializer_class = SlaSerializer
    filterset_fields = ["kind", "project", "job", "enabled"]
    create_with, update_with, delete_with = create_sla, update_sla, delete_sla

    def service_fields(self, serializer: SlaSerializer) -> dict:
        fields = dict(serializer.validated_data)
        if "job_id" in fields:
            fields["job"] = fields.pop("job_id")
        return fields


class SlaMissViewSet(viewsets.ReadOnlyModelViewSet):
    """Misses, newest slot first: alerted, recovered, late success."""

    queryset = SlaMiss.objects.all()
    serializer_class = SlaMissSerializer
    filterset_fields = ["sla"]
    permission_classes = [Requires(Capability.READ)]
