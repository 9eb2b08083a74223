from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
from kernel.errors import RequestError
from lineage.projects import get_project
from runs.artifacts import artifact_response
from runs.environments import create_environment, delete_environment, update_environment
from runs.filters import RunFilter
from runs.history import node_history
from runs.jobs import create_job, delete_job, retry_run, trigger_job, update_job, with_next_run
from runs.logs import read_log
from runs.models import FAILED_NODE_STATUSES, Environment, Job, NotificationTarget, Run, Worker
from runs.notifications import create_target, delete_target, update_target
from runs.pagination import RunPagination
from runs.serializers import (
    EnvironmentSerializer,
    JobRunSerializer,
    JobSerializer,
    NodeHistorySerializer,
    NodeResultSerializer,
    NotificationTargetCreatedSerializer,
    NotificationTargetSerializer,
    RunCreateSerializer,
    RunSerializer,
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

    queryset = Run.objects.select_related("triggered_by", "job").prefetch_related("steps").order_by("-queued_at", "-id")
    serializer_class = RunSerializer
    filterset_class = RunFilter
    pagination_class = RunPagination
    permission_classes = [Requires(Capability.READ)]
    operate_actions = frozenset({"create", "cancel", "rerun", "retry"})

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

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk=None) -> Response:
        """Rerun from failure (dbt retry): the failed step's errored and skipped nodes, then
        the steps after it."""
        run = retry_run(self.get_object(), actor=request.user, source=Source.API)
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


class ManagedViewSet(viewsets.ModelViewSet):
    """Viewer and up read; whoever manages schedules (operator, admin) creates, changes and
    deletes, through the audited service functions `create_with(actor=, source=, **fields)`,
    `update_with(instance, actor=, source=, **fields)` and `delete_with(instance, actor=,
    source=)`. `fixed_on_update`: fields a PATCH leaves as they are."""

    permission_classes = [Requires(Capability.READ)]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    fixed_on_update: tuple[str, ...] = ()
    create_with: Callable[..., Any]
    update_with: Callable[..., Any]
    delete_with: Callable[..., Any]

    def get_permissions(self):
        if self.action not in ("list", "retrieve"):
            return [Requires(Capability.MANAGE_SCHEDULES)()]
        return super().get_permissions()

    def service_fields(self, serializer) -> dict:
        """The validated fields as the service takes them (related objects by pk)."""
        return {key: getattr(value, "pk", value) for key, value in serializer.validated_data.items()}

    def read(self, instance) -> dict:
        return self.get_serializer(self.get_queryset().get(pk=instance.pk)).data

    def create(self, request: Request, *args, **kwargs) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        instance = type(self).create_with(actor=request.user, source=Source.API, **self.service_fields(data))
        return Response(self.created(instance), status=status.HTTP_201_CREATED)

    def created(self, instance) -> dict:
        return self.read(instance)

    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        data = self.get_serializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = {k: v for k, v in self.service_fields(data).items() if k not in self.fixed_on_update}
        instance = type(self).update_with(self.get_object(), actor=request.user, source=Source.API, **fields)
        return Response(self.read(instance))

    def perform_destroy(self, instance) -> None:
        type(self).delete_with(instance, actor=self.request.user, source=Source.API)


class EnvironmentViewSet(ManagedViewSet):
    """Environments per project: dbt target and warehouse connection (the password only by
    the name of the worker's variable holding it)."""

    queryset = Environment.objects.all()
    serializer_class = EnvironmentSerializer
    filterset_fields = ["project", "name"]
    fixed_on_update = ("project",)
    create_with, update_with, delete_with = create_environment, update_environment, delete_environment


class JobViewSet(ManagedViewSet):
    """Saved dbt jobs: ordered steps, environment, timeout, cron trigger. A job's runs:
    GET /api/v1/runs/?job={id}; POST /api/v1/jobs/{id}/run/ (operator, admin) triggers one."""

    queryset = with_next_run(Job.objects.select_related("created_by", "environment"))
    serializer_class = JobSerializer
    filterset_fields = ["project", "environment", "schedule_enabled"]
    fixed_on_update = ("project",)
    create_with, update_with, delete_with = create_job, update_job, delete_job

    def get_permissions(self):
        if self.action == "run":
            return [Requires(Capability.OPERATE)()]
        return super().get_permissions()

    @extend_schema(request=JobRunSerializer, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request: Request, pk=None) -> Response:
        """Run the job now, with dbt Cloud's overrides."""
        data = JobRunSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = trigger_job(self.get_object(), actor=request.user, source=Source.API, **data.validated_data)
        except RequestError as exc:
            raise data.as_sent(exc) from None
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class NotificationTargetViewSet(ManagedViewSet):
    """Who hears about runs (on failure, on success, on recovery), by email and a signed
    webhook. The secret is write-only: the create answers it once, nothing reads it back."""

    queryset = NotificationTarget.objects.select_related("job", "created_by")
    serializer_class = NotificationTargetSerializer
    filterset_fields = ["project", "job", "enabled"]
    create_with, update_with, delete_with = create_target, update_target, delete_target

    def service_fields(self, serializer) -> dict:
        return dict(serializer.validated_data)

    @extend_schema(responses={201: NotificationTargetCreatedSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        return super().create(request, *args, **kwargs)

    def created(self, instance: NotificationTarget) -> dict:
        return {**self.read(instance), "secret": instance.secret}


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


class NodeHistoryView(APIView):
    """GET /api/v1/projects/{project}/nodes/{unique_id}/history/: the node's last 30 results
    across runs, newest first, and (for a test) whether it is flaky."""

    permission_classes = [Requires(Capability.READ)]

    @extend_schema(responses=NodeHistorySerializer)
    def get(self, request: Request, project: str, unique_id: str) -> Response:
        if get_project(project) is None:
            raise NotFound(f"No dbt project {project!r}.")
        history = node_history(project, unique_id)
        data = {"project": project, "unique_id": unique_id, "flips": history.flips, "flaky": history.flaky}
        return Response(NodeHistorySerializer({**data, "results": history.results}).data)
