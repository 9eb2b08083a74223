"""/api/v1/slas/ (SLAs, changed through operations.slas: validated and audited) and
/api/v1/sla-misses/ (what the checker recorded)."""

from __future__ import annotations

from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Capability
from accounts.permissions import Requires
from audit.models import Source
from operations.models import Sla, SlaMiss
from operations.serializers import SlaMissSerializer, SlaSerializer
from operations.slas import create_sla, delete_sla, update_sla


class SlaViewSet(viewsets.ModelViewSet):
    """Viewer and up read; whoever manages schedules (operator, admin) creates, changes and deletes."""

    queryset = Sla.objects.select_related("created_by", "job")
    serializer_class = SlaSerializer
    filterset_fields = ["kind", "project", "job", "enabled"]
    permission_classes = [Requires(Capability.READ)]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_permissions(self):
        if self.action not in ("list", "retrieve"):
            return [Requires(Capability.MANAGE_SCHEDULES)()]
        return super().get_permissions()

    def _fields(self, serializer: SlaSerializer) -> dict:
        fields = dict(serializer.validated_data)
        if "job_id" in fields:
            fields["job"] = fields.pop("job_id")
        return fields

    def _read(self, sla: Sla) -> dict:
        return self.get_serializer(self.get_queryset().get(pk=sla.pk)).data

    def create(self, request: Request, *args, **kwargs) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        sla = create_sla(actor=request.user, source=Source.API, **self._fields(data))
        return Response(self._read(sla), status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        data = self.get_serializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        sla = update_sla(self.get_object(), actor=request.user, source=Source.API, **self._fields(data))
        return Response(self._read(sla))

    def perform_destroy(self, instance: Sla) -> None:
        delete_sla(instance, actor=self.request.user, source=Source.API)


class SlaMissViewSet(viewsets.ReadOnlyModelViewSet):
    """Misses, newest slot first: alerted, recovered, late success."""

    queryset = SlaMiss.objects.all()
    serializer_class = SlaMissSerializer
    filterset_fields = ["sla"]
    permission_classes = [Requires(Capability.READ)]
