"""The part of dbt Cloud's Administrative API (v2, and v3's project and environment look-ups)
that apache-airflow-providers-dbt-cloud uses, so a DAG written for dbt Cloud drives the
portal by changing its connection. One account (PORTAL_ACCOUNT_ID); the portal's API tokens
as `Authorization: Token <t>` (dbt Cloud's clients) or `Bearer <t>`; viewers read, operators
trigger, cancel and rerun. Every answer is in dbt Cloud's envelope (dbt_cloud.envelope);
a refused request changed nothing and queued nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import FileResponse
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import BearerTokenAuthentication
from accounts.models import Capability
from accounts.permissions import Requires
from audit.models import Source
from dbt_cloud import shapes
from dbt_cloud.envelope import envelope, exception_handler, not_found, page
from kernel.errors import RequestError
from lineage.projects import DbtProject, discover_projects
from runs.artifacts import artifact_response, indexed_paths
from runs.jobs import rerun_job, trigger_job, with_next_run
from runs.models import Environment, Job, Run
from runs.services import cancel_run

# POST jobs/{id}/run/: each override dbt Cloud documents that the portal honours, with its JSON
# type and runs.jobs.trigger_job's keyword for it; null means "no override" (the provider
# always sends steps_override and schema_override).
RUN_OVERRIDES: dict[str, tuple[type, str]] = {
    "steps_override": (list, "steps"),
    "threads_override": (int, "threads"),
    "target_name_override": (str, "target"),
    "timeout_seconds_override": (int, "timeout_seconds"),
    "schema_override": (str, "schema"),
    "generate_docs_override": (bool, "generate_docs"),
}
OVERRIDE_OF = {keyword: name for name, (_, keyword) in RUN_OVERRIDES.items()}
NOT_SUPPORTED = {
    "git_sha": "the portal runs each project as its folder under dbt_projects/ is, not a git revision",
    "git_branch": "the portal runs each project as its folder under dbt_projects/ is, not a git branch",
}
RELATED = frozenset({"job", "trigger", "run_steps", "environment"})
JOB_ORDER = {"id": "id", "name": "name", "created_at": "created_at", "updated_at": "updated_at"}
RUN_ORDER = {"id": "id", "created_at": "queued_at", "started_at": "started_at", "finished_at": "finished_at"}
NAME_ORDER = {"id": "id", "name": "name"}


class DbtCloudView(APIView):
    """Token authentication only (so no session, no CSRF: dbt Cloud clients send neither),
    JSON in and out, dbt Cloud's envelope for every error, and the account id checked."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [Requires(Capability.READ)]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    schema = None  # dbt Cloud's API, documented by dbt Labs, not part of the v1 schema

    def get_exception_handler(self) -> Callable:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        values = [request.path, *(value for _, values in request.query_params.lists() for value in values)]
        if any("\x00" in value for value in values):  # the database cannot store or compare it
            raise RequestError("the request's path or parameters hold a NUL character")
        if "account_id" in kwargs and int(kwargs["account_id"]) != settings.PORTAL_ACCOUNT_ID:
            raise not_found("account")


class OperateView(DbtCloudView):
    permission_classes = [Requires(Capability.OPERATE)]


def _id(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise RequestError(f"{name} must be an id (a whole number)", field=name)
    return int(raw)


def _order(params: Any, fields: dict[str, str]) -> tuple[str, bool]:
    """(field, descending) of `order_by` in dbt Cloud's names (`-` for descending); default id."""
    given = params.get("order_by") or "id"
    name = given.removeprefix("-")
    if name not in fields:
        choices = ", ".join(sorted(fields))
        raise RequestError(f"order_by must be one of {choices}, each optionally with a leading -", field="order_by")
    return fields[name], given.startswith("-")


def _ordered(queryset: QuerySet, params: Any, fields: dict[str, str]) -> QuerySet:
    field, descending = _order(params, fields)
    sign = "-" if descending else ""
    return queryset.order_by(f"{sign}{field}", f"{sign}id")


def _related(params: Any) -> frozenset[str]:
    """include_related as the provider sends it: repeated keys, a comma list or a JSON list."""
    names: list[str] = []
    for value in params.getlist("include_related"):
        if value.startswith("["):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if not isinstance(parsed, list) or not all(isinstance(name, str) for name in parsed):
                raise RequestError("include_related must be a list of names", field="include_related")
            names += parsed
        else:
            names += value.split(",")
    chosen = frozenset(name.strip() for name in names if name.strip())
    if unknown := chosen - RELATED:
        listed, known = ", ".join(sorted(unknown)), ", ".join(sorted(RELATED))
        raise RequestError(f"include_related: unknown {listed} (known: {known})", field="include_related")
    return chosen


def _project(pk: str) -> DbtProject:
    found = shapes.project_by_id(int(pk))
    if found is None:
        raise not_found("project")
    return found


def _job(pk: str) -> Job:
    found = with_next_run(Job.objects.select_related("environment")).filter(pk=int(pk)).first()
    if found is None:
        raise not_found("job")
    return found


def _runs(related: frozenset[str] = frozenset()) -> QuerySet[Run]:
    """Runs with what `related` shows joined in (the provider's poll needs none of it)."""
    runs = Run.objects.all()
    if "job" in related:
        runs = runs.select_related("job__environment")
    if "environment" in related:
        runs = runs.select_related("environment")
    if "run_steps" in related:
        runs = runs.prefetch_related("steps")
    return runs


def _run(pk: str, related: frozenset[str] = frozenset()) -> Run:
    try:
        return _runs(related).get(pk=int(pk))
    except Run.DoesNotExist:
        raise not_found("run") from None


def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON object sent (an empty body is {}); an unknown or unsupported field is refused."""
    data = request.data
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object", field=None)
    for name, value in data.items():
        if name in NOT_SUPPORTED and value is not None:
            raise RequestError(f"{name} is not supported: {NOT_SUPPORTED[name]}", field=name)
        if name not in allowed and name not in NOT_SUPPORTED:
            raise RequestError(f"unknown field {name!r} (supported: {', '.join(sorted(allowed))})", field=name)
    return data


def _overrides(data: dict[str, Any]) -> dict[str, Any]:
    """The non-null overrides, each of its JSON type (a boolean is not a number here), by
    trigger_job's keyword."""
    overrides = {}
    for name, (kind, keyword) in RUN_OVERRIDES.items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RequestError(f"{name} must be {_KIND_WORDS[kind]}", field=name)
        if kind is list and not all(isinstance(step, str) for step in value):
            raise RequestError(f"{name} must be a list of dbt command lines", field=name)
        overrides[keyword] = value
    return overrides


def _as_sent(exc: RequestError, overrides: dict[str, Any]) -> RequestError:
    """trigger_job's refusal naming the override the caller sent, not trigger_job's keyword
    (nor the run's field). A step's refusal keeps its sentence (it quotes the step) and names
    `steps` when the job's own steps are at fault."""
    if exc.field == "steps":
        if not overrides.get("steps"):
            return exc
        return RequestError(exc.message, field=OVERRIDE_OF["steps"], code=exc.code)
    if exc.field not in OVERRIDE_OF:
        return exc
    field = OVERRIDE_OF[exc.field]
    message = exc.message.removeprefix(exc.field).lstrip()
    return RequestError(f"{field} {message}", field=field, code=exc.code)


_KIND_WORDS = {list: "a list of dbt command lines", int: "a whole number", str: "text", bool: "true or false"}


class AccountListView(DbtCloudView):
    def get(self, request: Request) -> Response:
        return page([shapes.account()], request.query_params, lambda item: item)


class AccountView(DbtCloudView):
    def get(self, request: Request, account_id: str) -> Response:
        return envelope(shapes.account())


class ProjectListView(DbtCloudView):
    """v3: the dbt project folders, by name."""

    def get(self, request: Request, account_id: str) -> Response:
        params = request.query_params
        key, descending = _order(params, NAME_ORDER)
        needle = (params.get("name__icontains") or "").lower()
        projects = [found for found in discover_projects() if needle in found.name.lower()]
        by_name = key == "name"
        projects.sort(key=lambda found: found.name if by_name else shapes.project_id(found.name), reverse=descending)
        return page(projects, params, shapes.project)


class ProjectView(DbtCloudView):
    def get(self, request: Request, account_id: str, project_id: str) -> Response:
        return envelope(shapes.project(_project(project_id)))


class EnvironmentListView(DbtCloudView):
    """v3: a project's environments, as stored (its default one, `dev`, is made by its first
    run or job, never by a read)."""

    def get(self, request: Request, account_id: str, project_id: str) -> Response:
        found = _project(project_id)
        environments = Environment.objects.filter(project=found.name)
        if needle := request.query_params.get("name__icontains"):
            environments = environments.filter(name__icontains=needle)
        return page(_ordered(environments, request.query_params, NAME_ORDER), request.query_params, shapes.environment)


class EnvironmentView(DbtCloudView):
    def get(self, request: Request, account_id: str, project_id: str, environment_id: str) -> Response:
        found = Environment.objects.filter(project=_project(project_id).name, pk=int(environment_id)).first()
        if found is None:
            raise not_found("environment")
        return envelope(shapes.environment(found))


class JobListView(DbtCloudView):
    def get(self, request: Request, account_id: str) -> Response:
        params = request.query_params
        jobs = with_next_run(Job.objects.select_related("environment"))
        if (project := _id(params, "project_id")) is not None:
            found = shapes.project_by_id(project)
            jobs = jobs.filter(project=found.name) if found else jobs.none()
        if (environment := _id(params, "environment_id")) is not None:
            jobs = jobs.filter(environment_id=environment)
        if needle := params.get("name__icontains"):
            jobs = jobs.filter(name__icontains=needle)
        return page(_ordered(jobs, params, JOB_ORDER), params, shapes.job)


class JobView(DbtCloudView):
    def get(self, request: Request, account_id: str, job_id: str) -> Response:
        return envelope(shapes.job(_job(job_id)))


class JobRunView(OperateView):
    """Trigger the job: `cause` (required) and dbt Cloud's overrides; the run, queued (status 1)."""

    def post(self, request: Request, account_id: str, job_id: str) -> Response:
        job = _job(job_id)
        data = _body(request, {"cause", *RUN_OVERRIDES})
        cause = data.get("cause")
        if not isinstance(cause, str) or not cause.strip():
            raise RequestError("cause is required: why the job is run, at most 255 characters", field="cause")
        if len(cause) > 255 or "\x00" in cause:
            raise RequestError("cause must be text of at most 255 characters", field="cause")
        overrides = _overrides(data)
        try:
            run = trigger_job(job, actor=request.user, source=Source.API, cause=cause, **overrides)
        except RequestError as exc:
            raise _as_sent(exc, overrides) from None
        return envelope(shapes.run(run, frozenset({"trigger", "job"})))


class JobRerunView(OperateView):
    """dbt Cloud's rerun: from failure when the job's latest run failed, else the whole job."""

    def post(self, request: Request, account_id: str, job_id: str) -> Response:
        job = _job(job_id)
        cause = _body(request, {"cause"}).get("cause") or "rerun via dbt Cloud API"
        run = rerun_job(job, actor=request.user, source=Source.API, cause=cause)
        return envelope(shapes.run(run, frozenset({"trigger", "job"})))


class RunListView(DbtCloudView):
    def get(self, request: Request, account_id: str) -> Response:
        params = request.query_params
        related = _related(params)
        runs = _runs(related)
        if (job := _id(params, "job_definition_id")) is not None:
            runs = runs.filter(job_id=job)
        if (environment := _id(params, "environment_id")) is not None:
            runs = runs.filter(environment_id=environment)
        if (project := _id(params, "project_id")) is not None:
            found = shapes.project_by_id(project)
            runs = runs.filter(project=found.name) if found else runs.none()
        statuses = _statuses(params)
        if statuses is not None:
            runs = runs.filter(state__in=[state for status in statuses for state in shapes.states_of(status)])
        return page(_ordered(runs, params, RUN_ORDER), params, lambda item: shapes.run(item, related), bounded=True)


def _statuses(params: Any) -> list[int] | None:
    """`status=N` or `status__in=[1, 2, 3]` (the provider's literal), as dbt Cloud codes."""
    if (one := params.get("status")) not in (None, ""):
        raw, field = [one], "status"
    elif (many := params.get("status__in")) not in (None, ""):
        raw, field = many.strip("[]").split(","), "status__in"
    else:
        return None
    try:
        codes = [int(code) for code in raw if code.strip()]
    except ValueError:
        codes = []
    if not codes or any(code not in shapes.HUMANIZED for code in codes):
        known = ", ".join(str(code) for code in shapes.HUMANIZED)
        raise RequestError(f"{field} must be run status codes ({known})", field=field)
    return codes


class RunView(DbtCloudView):
    def get(self, request: Request, account_id: str, run_id: str) -> Response:
        related = _related(request.query_params)
        return envelope(shapes.run(_run(run_id, related), related))


class RunCancelView(OperateView):
    def post(self, request: Request, account_id: str, run_id: str) -> Response:
        return envelope(shapes.run(cancel_run(_run(run_id), actor=request.user, source=Source.API)))


def _invocation(run: Run, params: Any) -> int | None:
    """The dbt invocation whose artifacts `?step=N` names (None: each file's latest)."""
    step = _id(params, "step")
    if step is None:
        return None
    found = run.steps.filter(index=step).values_list("invocation", flat=True)
    if not found:
        if step == 1 and not run.steps.exists():
            return None  # a run of one command is its own step 1
        raise not_found(f"step {step} in run #{run.pk}")
    if found[0] is None:
        raise NotFound(f"Step {step} of run #{run.pk} wrote no artifacts.")
    return found[0]


class RunArtifactListView(DbtCloudView):
    def get(self, request: Request, account_id: str, run_id: str) -> Response:
        run = _run(run_id)
        return envelope(indexed_paths(run, _invocation(run, request.query_params)))


class RunArtifactView(DbtCloudView):
    """The artifact's own bytes (not the envelope: the provider writes the body to a file)."""

    def get(self, request: Request, account_id: str, run_id: str, path: str) -> FileResponse:
        run = _run(run_id)
        params = request.query_params
        return artifact_response(run, path, params.get("node", ""), _invocation(run, params))


class NotFoundView(DbtCloudView):
    """Any other path under /api/v2/ or /api/v3/: the envelope's 404."""

    authentication_classes = []
    permission_classes = [AllowAny]  # it serves nothing but the refusal

    def refuse(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound("No such API endpoint.")

    get = post = put = patch = delete = refuse
