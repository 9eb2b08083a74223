from __future__ import annotations

from django.db.models import Case, IntegerField, Value, When
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Capability
from accounts.permissions import Requires
from audit.models import Source
from lineage.projects import get_project
from runs.artifacts import artifact_response
from runs.filters import RunFilter
from runs.logs import read_log
from runs.models import FAILED_NODE_STATUSES, Run, RunSchedule, Worker
from runs.pagination import RunPagination
from runs.schedules import create_schedule, delete_schedule, set_enabled, with_next_run
from runs.serializers import (
    NodeResultSerializer,
    RunCreateSerializer,
    RunSerializer,
    ScheduleCreateSerializer,
    ScheduleSerializer,
    WorkerSerializer,
)
from runs.services import cancel_run, rerun, trigger_run


def failures_first(queryset):
    return queryset.annotate(
        failed_first=Case(
            When(status__in=FAILED_NODE_STATUSES, then=Value(0)), default=Value(1), output_field=IntegerField()
        )
    ).order_by("failed_first", "started_at", "unique_id")


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """dbt runs. Viewer and up read; operator and admin trigger (202), cancel and re-run."""

    queryset = Run.objects.select_related("triggered_by").order_by("-queued_at", "-id")
    serializer_class = RunSerializer
    filterset_class = RunFilter
    pagination_class = RunPagination
    permission_classes = [Requires(Capability.READ)]
    operate_actions = frozenset({"create", "cancel", "rerun"})

    def get_permissions(self):
        if self.action in self.operate_actions:
            return [Requires(Capability.OPERATE)()]
        return super().get_permissions()

    def get_serializer_class(self):
        return RunCreateSerializer if self.action == "create" else RunSerializer

    @extend_schema(request=RunCreateSerializer, responses={202: RunSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = trigger_run(**data.validated_data, actor=request.user, source=Source.API)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk=None) -> Response:
        run = cancel_run(self.get_object(), actor=request.user, source=Source.API)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk=None) -> Response:
        run = rerun(self.get_object(), actor=request.user, source=Source.API)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("offset", int, description="first line number to return")],
        responses={200: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["get"], filterset_class=None)
    def log(self, request: Request, pk=None) -> Response:
        """Log lines from ?offset= (a line number) on, for tailing; also the run's progress."""
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
        except ValueError:
            raise serializers.ValidationError({"offset": ["offset must be a line number"]}) from None
        return Response(read_log(self.get_object(), offset))

    @extend_schema(responses={200: NodeResultSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def nodes(self, request: Request, pk=None) -> Response:
        nodes = failures_first(self.get_object().node_results.all())
        return Response(NodeResultSerializer(nodes, many=True).data)


class ScheduleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Cron schedules of dbt runs. Viewer and up read; operator and admin create, enable,
    disable and delete. A schedule's runs: GET /api/v1/runs/?schedule={id}."""

    queryset = with_next_run(RunSchedule.objects.select_related("created_by"))
    serializer_class = ScheduleSerializer
    permission_classes = [Requires(Capability.READ)]
    filterset_fields = ["project", "enabled"]

    def get_permissions(self):
        if self.action not in ("list", "retrieve"):
            return [Requires(Capability.MANAGE_SCHEDULES)()]
        return super().get_permissions()

    @extend_schema(request=ScheduleCreateSerializer, responses={201: ScheduleSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        data = ScheduleCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = create_schedule(actor=request.user, source=Source.API, **data.validated_data)
        return Response(self._read(schedule), status=status.HTTP_201_CREATED)

    def _read(self, schedule: RunSchedule) -> dict:
        """The schedule as stored now, with its next run."""
        return ScheduleSerializer(self.get_queryset().get(pk=schedule.pk)).data

    def perform_destroy(self, instance: RunSchedule) -> None:
        delete_schedule(instance, actor=self.request.user, source=Source.API)

    def _set_enabled(self, enabled: bool) -> Response:
        schedule = set_enabled(self.get_object(), enabled, actor=self.request.user, source=Source.API)
        return Response(self._read(schedule))

    @extend_schema(request=None, responses={200: ScheduleSerializer})
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk=None) -> Response:
        """Enable; the next run is the next cron slot from now (missed slots are not made up)."""
        return self._set_enabled(True)

    @extend_schema(request=None, responses={200: ScheduleSerializer})
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk=None) -> Response:
        return self._set_enabled(False)


class RunArtifactView(APIView):
    """GET /api/v1/runs/{id}/artifacts/{name}: manifest.json, run_results.json, catalog.json,
    sources.json, dbt.log, or compiled.sql?node=<unique_id>, streamed from the artifact storage."""

    permission_classes = [Requires(Capability.READ)]

    @extend_schema(
        parameters=[OpenApiParameter("node", str, description="compiled.sql: the node's unique_id")],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request: Request, pk: int, name: str) -> FileResponse:
        run = Run.objects.filter(pk=pk).first()
        if run is None:
            raise NotFound("No such run.")
        return artifact_response(run, name, request.query_params.get("node", ""))


class ProjectParseView(APIView):
    """POST /api/v1/projects/{project}/parse/: a `dbt parse` run (202), which refreshes lineage."""

    permission_classes = [Requires(Capability.OPERATE)]

    @extend_schema(request=None, responses={202: RunSerializer})
    def post(self, request: Request, project: str) -> Response:
        if get_project(project) is None:
            raise NotFound(f"No dbt project {project!r}.")
        run = trigger_run(project=project, command="parse", actor=request.user, source=Source.API)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class WorkerListView(APIView):
    """Queue clusters by name, each with its last heartbeat and whether it is alive."""

    permission_classes = [Requires(Capability.READ)]

    @extend_schema(responses=WorkerSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(WorkerSerializer(Worker.objects.with_alive(), many=True).data)
