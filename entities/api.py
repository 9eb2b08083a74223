from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Capability
from accounts.permissions import Requires
from audit.models import Source
from entities import services
from entities.models import EntityType, ModeChangeRequest, ParityReport
from entities.queries import with_overview
from entities.refresh import trigger_refresh
from runs.serializers import RunSerializer


class ParityReportSerializer(serializers.ModelSerializer):
    entity = serializers.CharField(source="entity.name")
    parity_percent = serializers.CharField(source="percent_display")
    compared_rows = serializers.IntegerField()
    meets_threshold = serializers.SerializerMethodField()

    class Meta:
        model = ParityReport
        fields = [
            "id", "entity", "run", "created_at", "parity_percent", "meets_threshold", "compared_rows",
            "matching_rows", "rules_rows", "dbt_rows", "only_in_rules", "only_in_dbt", "mismatched_rows",
            "column_differences", "sample_keys", "seconds",
        ]  # fmt: skip

    def get_meets_threshold(self, report: ParityReport) -> bool:
        return report.entity.parity_passes(report)


class ParityReportPageSerializer(serializers.Serializer):
    """GET …/parity-reports/: one page of reports (the schema of DRF's page)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ParityReportSerializer(many=True)


class ModeChangeRequestSerializer(serializers.ModelSerializer):
    entity = serializers.CharField(source="entity.name")
    requested_by = serializers.CharField(source="requested_by.username")
    decided_by = serializers.CharField(source="decided_by.username", default=None, allow_null=True)
    stale = serializers.BooleanField(source="is_stale")
    # Plain text, not a second enum of the same choices (one `ModeEnum` in the schema).
    from_mode = serializers.CharField(read_only=True)

    class Meta:
        model = ModeChangeRequest
        fields = [
            "id", "entity", "from_mode", "from_canary_percent", "mode", "canary_percent", "reason",
            "requested_by", "requested_at", "status", "stale", "decided_by", "decided_at", "decision_comment",
            "parity_report", "parity_override_reason",
        ]  # fmt: skip


class ModeChangeRequestCreateSerializer(serializers.Serializer):
    mode = serializers.CharField()
    canary_percent = serializers.IntegerField(required=False, allow_null=True)
    reason = serializers.CharField(max_length=services.MAX_TEXT)


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=services.MAX_TEXT)
    override_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=services.MAX_TEXT,
        help_text="Admins only: approve below the parity threshold, for this recorded reason",
    )


class RollbackSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=services.MAX_TEXT)


class EntityTypeListSerializer(serializers.ListSerializer):
    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        """Every entity's parity, pending requests and last refresh in three queries, not 3 per entity."""
        return super().to_representation(with_overview(data.all() if hasattr(data, "all") else data))


class EntityTypeSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", default=None, allow_null=True)
    latest_parity = serializers.SerializerMethodField()
    pending_requests = serializers.SerializerMethodField()
    last_refresh = serializers.SerializerMethodField()

    class Meta:
        model = EntityType
        fields = [
            "name", "description", "dbt_project", "dbt_selector", "key_column", "serving_view", "mode",
            "canary_percent", "parity_threshold", "owner", "mode_changed_at", "latest_parity",
            "pending_requests", "last_refresh",
        ]  # fmt: skip
        list_serializer_class = EntityTypeListSerializer

    def to_representation(self, entity: EntityType) -> dict[str, Any]:
        if self.parent is None:  # one entity (read, rollback): its overview read now
            with_overview([entity])
        return super().to_representation(entity)

    @extend_schema_field(ParityReportSerializer(allow_null=True))
    def get_latest_parity(self, entity: EntityType) -> dict[str, Any] | None:
        report = entity.latest_report
        return ParityReportSerializer(report).data if report else None

    @extend_schema_field(ModeChangeRequestSerializer(many=True))
    def get_pending_requests(self, entity: EntityType) -> list[dict[str, Any]]:
        return ModeChangeRequestSerializer(entity.pending_requests, many=True).data

    @extend_schema_field(RunSerializer(allow_null=True))
    def get_last_refresh(self, entity: EntityType) -> dict[str, Any] | None:
        run = entity.last_refresh
        return RunSerializer(run).data if run else None


class EntityTypeViewSet(viewsets.ReadOnlyModelViewSet):
    """Entity types, their mode, parity and pending mode change requests."""

    queryset = EntityType.objects.select_related("owner")
    serializer_class = EntityTypeSerializer
    lookup_field = "name"
    permission_classes = [Requires(Capability.READ)]
    pagination_class = None

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"], permission_classes=[Requires(Capability.OPERATE)])
    def refresh(self, request: Request, name: str) -> Response:
        """Start a refresh run (202 with the run)."""
        run = trigger_refresh(self.get_object(), actor=request.user, source=Source.API)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={201: ModeChangeRequestSerializer})
    @action(
        detail=True,
        methods=["post"],
        url_path="mode-requests",
        permission_classes=[Requires(Capability.REQUEST_MODE_CHANGE)],
        serializer_class=ModeChangeRequestCreateSerializer,
    )
    def mode_requests(self, request: Request, name: str) -> Response:
        """Request a mode change {"mode", "canary_percent", "reason"} (201)."""
        entity = self.get_object()
        data = ModeChangeRequestCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.request_mode_change(
            entity,
            mode=data.validated_data["mode"],
            canary_percent=data.validated_data.get("canary_percent"),
            reason=data.validated_data["reason"],
            actor=request.user,
            source=Source.API,
        )
        return Response(ModeChangeRequestSerializer(created).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: EntityTypeSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[Requires(Capability.REQUEST_MODE_CHANGE)],
        serializer_class=RollbackSerializer,
    )
    def rollback(self, request: Request, name: str) -> Response:
        """Break-glass: back to rules at once {"reason"}; approvers are emailed."""
        entity = self.get_object()
        data = RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.rollback(entity, actor=request.user, reason=data.validated_data["reason"], source=Source.API)
        entity.refresh_from_db()
        return Response(EntityTypeSerializer(entity).data)

    @extend_schema(
        parameters=[OpenApiParameter("page", int, description="A page number within the paginated result set")],
        responses=ParityReportPageSerializer,
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="parity-reports",
        permission_classes=[Requires(Capability.READ)],
        serializer_class=ParityReportSerializer,
    )
    def parity_reports(self, request: Request, name: str) -> Response:
        """Parity reports, newest first (paginated)."""
        entity = self.get_object()
        reports = entity.parity_reports.select_related("entity")
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(reports, request, view=self)
        return paginator.get_paginated_response(ParityReportSerializer(page, many=True).data)


class ModeChangeRequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Mode change requests; approvers approve or reject others' requests, requesters withdraw their own."""

    queryset = ModeChangeRequest.objects.select_related("entity", "requested_by", "decided_by")
    serializer_class = ModeChangeRequestSerializer
    permission_classes = [Requires(Capability.READ)]
    filterset_fields = ["status", "entity__name"]

    def _decide(self, request: Request, pk: str, verb: services.Verb) -> Response:
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not str(pk).isdigit():
            raise NotFound("No such mode change request.")
        get_object_or_404(ModeChangeRequest, pk=pk)
        decided = services.act_on_request(verb, int(pk), actor=request.user, **data.validated_data, source=Source.API)
        decided.refresh_from_db()
        return Response(ModeChangeRequestSerializer(decided).data)

    @extend_schema(responses={200: ModeChangeRequestSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[Requires(Capability.APPROVE_MODE_CHANGE)],
        serializer_class=DecisionSerializer,
    )
    def approve(self, request: Request, pk: str) -> Response:
        """Approve and apply {"comment", "override_reason"}: 403 own request, 409 stale or parity gate."""
        return self._decide(request, pk, services.Verb.APPROVE)

    @extend_schema(responses={200: ModeChangeRequestSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[Requires(Capability.APPROVE_MODE_CHANGE)],
        serializer_class=DecisionSerializer,
    )
    def reject(self, request: Request, pk: str) -> Response:
        """Reject {"comment"}: 403 own request, 409 already decided."""
        return self._decide(request, pk, services.Verb.REJECT)

    @extend_schema(responses={200: ModeChangeRequestSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[Requires(Capability.REQUEST_MODE_CHANGE)],
        serializer_class=DecisionSerializer,
    )
    def withdraw(self, request: Request, pk: str) -> Response:
        """Withdraw your own pending request {"comment" (optional)}: 403 someone else's, 409 already closed."""
        return self._decide(request, pk, services.Verb.WITHDRAW)
