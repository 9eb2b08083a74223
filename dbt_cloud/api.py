"""dbt Cloud's Administrative API (v2, and v3's accounts, projects, environments and jobs) as
its clients call it (apache-airflow-providers-dbt-cloud, dbt-cloud-cli, dagster-dbt), so what
was written for dbt Cloud drives the portal by changing its host, account and token. One
account (PORTAL_ACCOUNT_ID); the portal's API tokens as `Authorization: Token <t>` (dbt Cloud's
clients) or `Bearer <t>`; viewers read, operators trigger, cancel and rerun, operators and
admins write jobs (runs.jobs, audited). Every answer is in dbt Cloud's envelope
(dbt_cloud.envelope); every body field and query parameter is honoured or refused by name,
never ignored; a refused request changed nothing and queued nothing."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import F, QuerySet
from django.http import FileResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
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
from dbt_cloud import job_definitions, shapes
from dbt_cloud.envelope import PAGING, envelope, exception_handler, not_found, page
from kernel.errors import ErrorCode, RequestError
from lineage.projects import DbtProject, discover_projects
from runs.artifacts import artifact_response, indexed_paths
from runs.ci import pr_schema
from runs.jobs import create_job, delete_job, rerun_job, trigger_job, update_job, with_next_run
from runs.models import FINAL_STATES, Environment, Job, Run
from runs.services import cancel_run

# POST jobs/{id}/run/: each override dbt Cloud documents that the portal honours, with its JSON
# type and runs.jobs.trigger_job's keyword for it; null means "no override" (clients send
# their whole request model, nulls included).
RUN_OVERRIDES: dict[str, tuple[type, str]] = {
    "steps_override": (list, "steps"),
    "threads_override": (int, "threads"),
    "target_name_override": (str, "target"),
    "timeout_seconds_override": (int, "timeout_seconds"),
    "schema_override": (str, "schema"),
    "generate_docs_override": (bool, "generate_docs"),
}
OVERRIDE_OF = {keyword: name for name, (_, keyword) in RUN_OVERRIDES.items()}
# A trigger with one of these (and git_sha, the pull request's head) is a CI run of it, into
# the schema of dbt Cloud's name for it (dbt_cloud_pr_<job>_<number>) unless schema_override names another.
PULL_REQUEST_FIELDS = (
    "github_pull_request_id", "gitlab_merge_request_id", "azure_pull_request_id", "non_native_pull_request_id",
)  # fmt: skip
TRIGGER_FIELDS = {
    "cause", "account_id", "job_id", "dbt_version_override", "git_sha", "git_branch", *PULL_REQUEST_FIELDS,
    *RUN_OVERRIDES,
}  # fmt: skip
RELATED = frozenset(
    {
        "job", "trigger", "run_steps", "environment", "debug_logs", "run_retries", "repository", "used_repo_cache",
        "repo_cache_restore", "audit",
    }
)  # fmt: skip
# include_related of a job (list or one): its latest run, its latest finished run.
JOB_RELATED = frozenset({"most_recent_run", "most_recent_completed_run"})
JOB_ORDER = {"id": "id", "name": "name", "created_at": "created_at", "updated_at": "updated_at"}
RUN_ORDER = {"id": "id", "created_at": "queued_at", "started_at": "started_at", "finished_at": "finished_at"}
NAME_ORDER = {"id": "id", "name": "name"}
NULLABLE_ORDER = frozenset({"started_at", "finished_at"})
# Every list answers most recent first when no order_by is sent only where dbt Cloud does: runs.
RUN_DEFAULT_ORDER = "-id"
# Filters dbt Cloud documents that the portal cannot honour, refused by name with why.
REFUSED_FILTERS = {
    "deferring_run_id": "the portal's runs defer to no other run",
    "credentials_id": "an environment's connection is part of it, it has no credentials id of its own",
    "repository_id": "a git project's repository is part of it, it has no repository id of its own",
}


class DbtCloudView(APIView):
    """Token authentication only (so no session, no CSRF: dbt Cloud clients send neither),
    JSON in and out, dbt Cloud's envelope for every error, and the account id checked."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [Requires(Capability.READ)]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    schema = None  # dbt Cloud's API, documented by dbt Labs, not part of the v1 schema
    # The query parameters a GET takes besides paging (None: any, e.g. the artifact views).
    filters: frozenset[str] | None = frozenset()

    def get_exception_handler(self) -> Callable:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        values = [request.path, *(value for _, values in request.query_params.lists() for value in values)]
        if any("\x00" in value for value in values):  # the database cannot store or compare it
            raise RequestError("the request's path or parameters hold a NUL character")
        if "account_id" in kwargs and int(kwargs["account_id"]) != settings.PORTAL_ACCOUNT_ID:
            raise not_found("account")
        _same(request.query_params.get("account_id"), settings.PORTAL_ACCOUNT_ID, "account_id")
        if request.method == "GET" and self.filters is not None:
            _known_params(request.query_params, self.filters)


class OperateView(DbtCloudView):
    permission_classes = [Requires(Capability.OPERATE)]


def _known_params(params: Any, filters: frozenset[str]) -> None:
    """Every query parameter is honoured or refused by name, never ignored."""
    for name in params:
        if name in REFUSED_FILTERS:
            raise RequestError(f"{name} is not supported: {REFUSED_FILTERS[name]}", field=name)
        if name not in filters and name not in (*PAGING, "account_id"):
            known = ", ".join(sorted({*filters, *PAGING}))
            raise RequestError(f"unknown parameter {name!r} (this list takes: {known})", field=name)


def _same(value: Any, expected: int, name: str) -> None:
    """An id a client repeats (account_id, job_id) must be the path's, or be absent/null."""
    if value in (None, ""):
        return
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if isinstance(value, bool) or value != expected:
        raise RequestError(f"{name} {value!r} is not this request's {name} ({expected})", field=name)


def _id(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise RequestError(f"{name} must be an id (a whole number)", field=name)
    return int(raw)


def _list(params: Any, name: str) -> list[str] | None:
    """A list parameter as clients send it: repeated keys, `a,b`, a JSON list `["a", "b"]` or a
    Python literal `['a', 'b']`; None when absent."""
    values = [value for value in params.getlist(name) if value.strip()]
    if not values:
        return None
    items: list[str] = []
    for value in values:
        text = value.strip()
        if text.startswith(("[", "(")):
            try:
                parsed = json.loads(text)
            except ValueError:
                try:
                    parsed = ast.literal_eval(text)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    parsed = None
            if not isinstance(parsed, list | tuple) or not all(isinstance(item, str | int) for item in parsed):
                raise RequestError(f"{name} must be a list", field=name)
            items += [str(item) for item in parsed]
        else:
            items += text.split(",")
    return [item.strip() for item in items if item.strip()]


def _ids(params: Any, name: str) -> list[int] | None:
    items = _list(params, name)
    if items is None:
        return None
    if not all(item.isascii() and item.isdigit() and len(item) <= 18 for item in items):
        raise RequestError(f"{name} must be a list of ids (whole numbers)", field=name)
    return [int(item) for item in items]


def _moment(text: Any, name: str) -> datetime | None:
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise RequestError(f"{name} must hold ISO 8601 date-times", field=name)
    found = parse_datetime(text.strip().replace(" ", "T", 1) if "T" not in text else text.strip())
    if found is None:
        day = parse_date(text.strip()) if len(text.strip()) == 10 else None
        if day is None:
            raise RequestError(f"{name} must hold ISO 8601 date-times, not {text!r}", field=name)
        found = datetime(day.year, day.month, day.day)
    return found if timezone.is_aware(found) else timezone.make_aware(found, UTC)


def _range(params: Any, name: str) -> tuple[datetime | None, datetime | None] | None:
    """`[start, end]` (a JSON array string, either end null for open) or `start,end`."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    text = raw.strip()
    parsed: Any
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    else:
        parsed = text.split(",")
    if not isinstance(parsed, list) or len(parsed) != 2:
        raise RequestError(f'{name} must be two date-times: ["start", "end"]', field=name)
    return _moment(parsed[0], name), _moment(parsed[1], name)


def _within(queryset: QuerySet, field: str, bounds: tuple[datetime | None, datetime | None] | None) -> QuerySet:
    if bounds is None:
        return queryset
    start, end = bounds
    if start is not None:
        queryset = queryset.filter(**{f"{field}__gte": start})
    if end is not None:
        queryset = queryset.filter(**{f"{field}__lte": end})
    return queryset


def _state(params: Any) -> bool:
    """dbt Cloud's `state` filter: 1 (active) is every stored object, 2 (deleted) none: the
    portal keeps nothing deleted. False when the answer is empty."""
    raw = params.get("state")
    if raw in (None, "", "1"):
        return True
    if raw == "2":
        return False
    raise RequestError("state must be 1 (active) or 2 (deleted)", field="state")


def _order(params: Any, fields: dict[str, str], default: str = "id") -> tuple[str, bool]:
    """(field, descending) of `order_by` in dbt Cloud's names (`-` for descending)."""
    given = params.get("order_by") or default
    name = given.removeprefix("-")
    if name not in fields:
        choices = ", ".join(sorted(fields))
        raise RequestError(f"order_by must be one of {choices}, each optionally with a leading -", field="order_by")
    return fields[name], given.startswith("-")


def _ordered(queryset: QuerySet, params: Any, fields: dict[str, str], default: str = "id") -> QuerySet:
    field, descending = _order(params, fields, default)
    sign = "-" if descending else ""
    if field in NULLABLE_ORDER:  # runs not started or not finished come last either way
        return queryset.order_by(F(field).desc(nulls_last=True) if descending else F(field).asc(), f"{sign}id")
    return queryset.order_by(f"{sign}{field}", f"{sign}id")


def _related(params: Any, known_names: frozenset[str] = RELATED) -> frozenset[str]:
    """include_related: repeated keys, a comma list, a JSON list or a Python-style list."""
    chosen = frozenset(_list(params, "include_related") or ())
    if unknown := chosen - known_names:
        listed, known = ", ".join(sorted(unknown)), ", ".join(sorted(known_names))
        raise RequestError(f"include_related: unknown {listed} (known: {known})", field="include_related")
    return chosen


def _project(pk: str | int) -> DbtProject:
    found = shapes.project_by_id(int(pk))
    if found is None:
        raise not_found("project")
    return found


def _project_names(params: Any) -> list[str] | None:
    """The project folders project_id / project_id__in name (None: no such filter)."""
    wanted: list[int] = []
    given = False
    if (one := _id(params, "project_id")) is not None:
        wanted.append(one)
        given = True
    if (many := _ids(params, "project_id__in")) is not None:
        wanted += many
        given = True
    if not given:
        return None
    names = []
    for pk in wanted:
        found = shapes.project_by_id(pk)
        if found is not None:
            names.append(found.name)
    return names


def _by_ids(queryset: QuerySet, params: Any, name: str, field: str) -> QuerySet:
    """`name=N` and `name__in=[…]` on `field`."""
    if (one := _id(params, name)) is not None:
        queryset = queryset.filter(**{field: one})
    if (many := _ids(params, f"{name}__in")) is not None:
        queryset = queryset.filter(**{f"{field}__in": many})
    return queryset


def _names(queryset: QuerySet, params: Any) -> QuerySet:
    if (name := params.get("name")) not in (None, ""):
        queryset = queryset.filter(name=name)
    if needle := params.get("name__icontains"):
        queryset = queryset.filter(name__icontains=needle)
    return queryset


def _job(pk: str | int) -> Job:
    found = with_next_run(Job.objects.select_related("environment")).filter(pk=int(pk)).first()
    if found is None:
        raise not_found("job")
    return found


def _runs(related: frozenset[str] = frozenset()) -> QuerySet[Run]:
    """Runs with what `related` shows joined in (the provider's poll needs none of it)."""
    runs = Run.objects.all()
    if related & {"environment", "run_steps", "debug_logs"}:
        runs = runs.select_related("environment")
    if "job" in related:
        runs = runs.select_related("job__environment")
    if related & {"run_steps", "debug_logs"}:
        runs = runs.prefetch_related("steps")
    if "run_retries" in related:
        runs = runs.prefetch_related("retries__environment")
    if "audit" in related:
        runs = runs.select_related("triggered_by")
    return runs


def _run(pk: str, related: frozenset[str] = frozenset()) -> Run:
    try:
        return _runs(related).get(pk=int(pk))
    except Run.DoesNotExist:
        raise not_found("run") from None


def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
    """The JSON object sent (an empty body is {}), its nulls dropped (a null is "not sent");
    an unknown or unsupported field is refused by name."""
    data = request.data
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object", field=None)
    for name in data:
        if name not in allowed:
            raise RequestError(f"unknown field {name!r} (supported: {', '.join(sorted(allowed))})", field=name)
    return {name: value for name, value in data.items() if value is not None}


_dbt_version = job_definitions.check_dbt_version


def _overrides(data: dict[str, Any]) -> dict[str, Any]:
    """The non-null overrides, each of its JSON type (a boolean is not a number here), by
    trigger_job's keyword; steps_override [] is no override."""
    overrides = {}
    for name, (kind, keyword) in RUN_OVERRIDES.items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RequestError(f"{name} must be {_KIND_WORDS[kind]}", field=name)
        if kind is list and not all(isinstance(step, str) for step in value):
            raise RequestError(f"{name} must be a list of dbt command lines", field=name)
        if kind is list and not value:
            continue
        overrides[keyword] = value
    return overrides


def _git(data: dict[str, Any], job: Job) -> dict[str, Any]:
    """git_sha, git_branch and a pull request's id, by trigger_job's keyword: a pull request's
    run needs its head commit, and builds into dbt Cloud's schema for it."""
    fields = {}
    for name in ("git_sha", "git_branch"):
        if name in data:
            if not isinstance(data[name], str):
                raise RequestError(f"{name} must be text", field=name)
            fields[name] = data[name]
    sent = [name for name in PULL_REQUEST_FIELDS if name in data]
    if len(sent) > 1:
        raise RequestError(f"send one pull request id, not {' and '.join(sent)}", field=sent[1])
    if sent:
        number = data[sent[0]]
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 2**31 - 1:
            raise RequestError(f"{sent[0]} must be a pull request's number", field=sent[0])
        if not fields.get("git_sha"):
            raise RequestError(f"{sent[0]} needs the pull request's head commit in git_sha", field="git_sha")
        if not job.triggers_on_pull_request:
            raise RequestError(f"job {job.pk} is not a CI job (job_type ci): a pull request runs those", field=sent[0])
        fields["pull_request"] = number
        if "schema_override" not in data:
            fields["schema"] = pr_schema(job, number)
    return fields


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
    filters = frozenset({"state"})

    def get(self, request: Request) -> Response:
        accounts = [shapes.account()] if _state(request.query_params) else []
        return page(accounts, request.query_params, lambda item: item)


class AccountView(DbtCloudView):
    def get(self, request: Request, account_id: str) -> Response:
        return envelope(shapes.account())


class ProjectListView(DbtCloudView):
    """The dbt project folders."""

    filters = frozenset({"name", "name__icontains", "id__in", "state"})

    def get(self, request: Request, account_id: str) -> Response:
        params = request.query_params
        key, descending = _order(params, NAME_ORDER)
        needle = (params.get("name__icontains") or "").lower()
        exact = params.get("name")
        ids = _ids(params, "id__in")
        projects = [
            found
            for found in discover_projects()
            if needle in found.name.lower()
            and exact in (None, "", found.name)
            and (ids is None or shapes.project_id(found.name) in ids)
        ]
        if not _state(params):
            projects = []
        by_name = key == "name"
        projects.sort(key=lambda found: found.name if by_name else shapes.project_id(found.name), reverse=descending)
        return page(projects, params, shapes.project)


class ProjectView(DbtCloudView):
    def get(self, request: Request, account_id: str, project_id: str) -> Response:
        return envelope(shapes.project(_project(project_id)))


ENVIRONMENT_FILTERS = frozenset(
    {
        "name", "name__icontains", "id__in", "state", "type", "deployment_type", "dbt_version", "project_id",
        "project_id__in",
    }
)  # fmt: skip
DEPLOYMENT_TYPES = {"production": "prod", "staging": None}


def _environments(params: Any, environments: QuerySet[Environment]) -> QuerySet[Environment]:
    """Environments as dbt Cloud filters them: each is a deployment environment, `prod` the
    production one, all on the workers' dbt."""
    if (names := _project_names(params)) is not None:
        environments = environments.filter(project__in=names)
    environments = _names(environments, params)
    if (ids := _ids(params, "id__in")) is not None:
        environments = environments.filter(pk__in=ids)
    if not _state(params):
        environments = environments.none()
    if (kind := params.get("type")) not in (None, ""):
        if kind not in ("deployment", "development"):
            raise RequestError("type must be deployment or development", field="type")
        environments = environments if kind == "deployment" else environments.none()
    if (deployment := params.get("deployment_type")) not in (None, ""):
        if deployment not in DEPLOYMENT_TYPES:
            raise RequestError("deployment_type must be production or staging", field="deployment_type")
        name = DEPLOYMENT_TYPES[deployment]
        environments = environments.filter(name=name) if name else environments.none()
    if (version := params.get("dbt_version")) not in (None, ""):
        try:
            _dbt_version(version, "dbt_version")
        except RequestError:
            environments = environments.none()
    return _ordered(environments, params, NAME_ORDER)


class AccountEnvironmentListView(DbtCloudView):
    """Every project's environments (what clients call at the account level)."""

    filters = ENVIRONMENT_FILTERS

    def get(self, request: Request, account_id: str) -> Response:
        environments = _environments(request.query_params, Environment.objects.all())
        return page(environments, request.query_params, shapes.environment)


class EnvironmentListView(DbtCloudView):
    """A project's environments, as stored (its default one, `dev`, is made by its first run
    or job, never by a read)."""

    filters = ENVIRONMENT_FILTERS - {"project_id", "project_id__in"}

    def get(self, request: Request, account_id: str, project_id: str) -> Response:
        found = _project(project_id)
        environments = _environments(request.query_params, Environment.objects.filter(project=found.name))
        return page(environments, request.query_params, shapes.environment)


class EnvironmentView(DbtCloudView):
    def get(self, request: Request, account_id: str, environment_id: str, project_id: str | None = None) -> Response:
        environments = Environment.objects.filter(pk=int(environment_id))
        if project_id is not None:
            environments = environments.filter(project=_project(project_id).name)
        found = environments.first()
        if found is None:
            raise not_found("environment")
        return envelope(shapes.environment(found))


def _job_shape(related: frozenset[str]) -> Callable[[Job], dict[str, Any]]:
    """A job's shape with what include_related asks: most_recent_run, most_recent_completed_run."""

    def shape(item: Job) -> dict[str, Any]:
        data = shapes.job(item)
        runs = item.runs.select_related("environment").order_by("-id")
        if "most_recent_run" in related:
            latest = runs.first()
            data["most_recent_run"] = shapes.run(latest) if latest else None
        if "most_recent_completed_run" in related:
            finished = runs.filter(state__in=FINAL_STATES).first()
            data["most_recent_completed_run"] = shapes.run(finished) if finished else None
        return data

    return shape


JOB_FILTERS = frozenset(
    {
        "include_related", "project_id", "project_id__in", "environment_id", "environment_id__in", "name",
        "name__icontains", "id__in", "state", "job_type",
    }
)  # fmt: skip


class JobListView(DbtCloudView):
    """GET: the jobs; POST: create one (job_definitions.create_job)."""

    filters = JOB_FILTERS

    def get_permissions(self) -> Any:
        if self.request.method == "POST":
            return [Requires(Capability.MANAGE_SCHEDULES)()]
        return super().get_permissions()

    def get(self, request: Request, account_id: str) -> Response:
        params = request.query_params
        jobs = with_next_run(Job.objects.select_related("environment"))
        if (names := _project_names(params)) is not None:
            jobs = jobs.filter(project__in=names)
        jobs = _by_ids(jobs, params, "environment_id", "environment_id")
        jobs = _names(jobs, params)
        if (ids := _ids(params, "id__in")) is not None:
            jobs = jobs.filter(pk__in=ids)
        if not _state(params):
            jobs = jobs.none()
        if (kind := params.get("job_type")) not in (None, ""):
            if kind not in job_definitions.JOB_TYPES:
                known = ", ".join(job_definitions.JOB_TYPES)
                raise RequestError(f"job_type must be one of {known}", field="job_type")
            jobs = jobs.filter(schedule_enabled=True) if kind == "scheduled" else jobs
            jobs = jobs.filter(schedule_enabled=False) if kind == "other" else jobs
            jobs = jobs if kind in ("scheduled", "other") else jobs.none()
        shape = _job_shape(_related(params, JOB_RELATED))
        return page(_ordered(jobs, params, JOB_ORDER), params, shape)

    def post(self, request: Request, account_id: str) -> Response:
        project, fields = job_definitions.job_fields(request.data)
        try:
            job = create_job(actor=request.user, source=Source.API, project=project, **fields)
        except RequestError as exc:
            raise job_definitions.as_sent(exc) from None
        return envelope(shapes.job(_job(job.pk)), code=201)


class JobView(DbtCloudView):
    """GET the job; POST changes it (dbt Cloud's update); DELETE deletes it, answering the
    job as it was, `state` 2."""

    filters = frozenset({"include_related"})

    def get_permissions(self) -> Any:
        if self.request.method in ("POST", "DELETE"):
            return [Requires(Capability.MANAGE_SCHEDULES)()]
        return super().get_permissions()

    def get(self, request: Request, account_id: str, job_id: str) -> Response:
        return envelope(_job_shape(_related(request.query_params, JOB_RELATED))(_job(job_id)))

    def post(self, request: Request, account_id: str, job_id: str) -> Response:
        job = _job(job_id)
        _, fields = job_definitions.job_fields(request.data, job=job)
        try:
            update_job(job, actor=request.user, source=Source.API, **fields)
        except RequestError as exc:
            raise job_definitions.as_sent(exc) from None
        return envelope(shapes.job(_job(job.pk)))

    def delete(self, request: Request, account_id: str, job_id: str) -> Response:
        job = _job(job_id)
        gone = {**shapes.job(job), "state": 2, "deactivated": True}
        delete_job(job, actor=request.user, source=Source.API)
        return envelope(gone)


class JobArtifactView(DbtCloudView):
    """The artifact of the job's latest run that wrote it (`?step=` as a run's artifacts)."""

    filters = frozenset({"step", "node"})

    def get(self, request: Request, account_id: str, job_id: str, path: str) -> FileResponse:
        job = _job(job_id)
        run = job.runs.filter(artifacts__name=path).order_by("-id").first()
        if run is None:
            raise NotFound(f"No run of job #{job.pk} wrote {path}.")
        params = request.query_params
        return artifact_response(run, path, params.get("node", ""), _invocation(run, params))


class JobRunView(OperateView):
    """Trigger the job: `cause` and dbt Cloud's overrides; the run, queued (status 1)."""

    def post(self, request: Request, account_id: str, job_id: str) -> Response:
        job = _job(job_id)
        data = _body(request, TRIGGER_FIELDS)
        _same(data.get("account_id"), settings.PORTAL_ACCOUNT_ID, "account_id")
        _same(data.get("job_id"), job.pk, "job_id")
        _dbt_version(data.get("dbt_version_override"), "dbt_version_override")
        cause = data.get("cause")
        if not isinstance(cause, str) or not cause.strip():
            raise RequestError("cause is required: why the job is run, at most 255 characters", field="cause")
        if len(cause) > 255 or "\x00" in cause:
            raise RequestError("cause must be text of at most 255 characters", field="cause")
        overrides = _overrides(data) | _git(data, job)
        try:
            run = trigger_job(job, actor=request.user, source=Source.API, cause=cause, **overrides)
        except RequestError as exc:
            raise _as_sent(exc, overrides) from None
        return envelope(shapes.run(run, frozenset({"trigger", "job"})))


class JobRerunView(OperateView):
    """dbt Cloud's rerun: from failure when the job's latest run failed, else the whole job."""

    def post(self, request: Request, account_id: str, job_id: str) -> Response:
        job = _job(job_id)
        data = _body(request, {"cause", "account_id", "job_id"})
        _same(data.get("account_id"), settings.PORTAL_ACCOUNT_ID, "account_id")
        _same(data.get("job_id"), job.pk, "job_id")
        cause = data.get("cause") or "rerun via dbt Cloud API"
        run = rerun_job(job, actor=request.user, source=Source.API, cause=cause)
        return envelope(shapes.run(run, frozenset({"trigger", "job"})))


RUN_FILTERS = frozenset(
    {
        "include_related", "job_definition_id", "job_definition_id__in", "environment_id", "environment_id__in",
        "project_id", "project_id__in", "status", "status__in", "id__in", "created_at__range",
        "finished_at__range", "started_at__range", "pr_id", "pr_id__in",
    }
)  # fmt: skip


class RunListView(DbtCloudView):
    filters = RUN_FILTERS

    def get(self, request: Request, account_id: str) -> Response:
        params = request.query_params
        related = _related(params)
        runs = _runs(related)
        runs = _by_ids(runs, params, "job_definition_id", "job_id")
        runs = _by_ids(runs, params, "environment_id", "environment_id")
        runs = _by_ids(runs, params, "pr_id", "pull_request")
        if (names := _project_names(params)) is not None:
            runs = runs.filter(project__in=names)
        if (ids := _ids(params, "id__in")) is not None:
            runs = runs.filter(pk__in=ids)
        statuses = _statuses(params)
        if statuses is not None:
            runs = runs.filter(state__in=[state for status in statuses for state in shapes.states_of(status)])
        runs = _within(runs, "queued_at", _range(params, "created_at__range"))
        runs = _within(runs, "started_at", _range(params, "started_at__range"))
        runs = _within(runs, "finished_at", _range(params, "finished_at__range"))
        ordered = _ordered(runs, params, RUN_ORDER, RUN_DEFAULT_ORDER)
        return page(ordered, params, lambda item: shapes.run(item, related), bounded=True)


def _statuses(params: Any) -> list[int] | None:
    """`status=N` and `status__in=[1, 2, 3]`, as dbt Cloud codes; both given: both apply."""
    chosen: set[int] | None = None
    for field in ("status", "status__in"):
        raw = _list(params, field)
        if raw is None:
            continue
        try:
            codes = {int(code) for code in raw}
        except ValueError:
            codes = set()
        if not codes or any(code not in shapes.HUMANIZED for code in codes):
            known = ", ".join(str(code) for code in shapes.HUMANIZED)
            raise RequestError(f"{field} must be run status codes ({known})", field=field)
        chosen = codes if chosen is None else chosen & codes
    return None if chosen is None else sorted(chosen)


class RunView(DbtCloudView):
    filters = frozenset({"include_related"})

    def get(self, request: Request, account_id: str, run_id: str) -> Response:
        related = _related(request.query_params)
        return envelope(shapes.run(_run(run_id, related), related))


class RunCancelView(OperateView):
    """A queued or running run is cancelled (the answer's status is 30, where it is going);
    a finished one is answered as it is."""

    def post(self, request: Request, account_id: str, run_id: str) -> Response:
        run = _run(run_id)
        if not run.is_final:
            try:
                run = cancel_run(run, actor=request.user, source=Source.API)
            except RequestError as exc:
                if exc.code != ErrorCode.ALREADY_FINISHED:
                    raise
                run = _run(run_id)
        data = shapes.run(run)
        if not run.is_final and run.cancel_requested_at:
            data.update(status=shapes.CANCELLED, status_humanized=shapes.HUMANIZED[shapes.CANCELLED])
        return envelope(data)


def _invocation(run: Run, params: Any) -> int | None:
    """The dbt invocation whose artifacts `?step=N` names, N counted as dbt Cloud's run steps
    (its setup steps first); None: each file's latest (the last step)."""
    step = _id(params, "step")
    if step is None:
        return None
    names = shapes.step_names(run)
    if not 1 <= step <= len(names):
        raise not_found(f"step {step} in run #{run.pk}")
    dbt_step = step - len(shapes.SETUP_STEPS)
    found = list(run.steps.filter(index=dbt_step).values_list("invocation", flat=True)) if dbt_step >= 1 else [None]
    if dbt_step == 1 and not found:
        return None  # a run of one command is its own first dbt step
    if found[0] is None:
        raise NotFound(f"Step {step} of run #{run.pk} ({names[step - 1]}) wrote no artifacts.")
    return found[0]


class RunArtifactListView(DbtCloudView):
    filters = frozenset({"step"})

    def get(self, request: Request, account_id: str, run_id: str) -> Response:
        run = _run(run_id)
        return envelope(indexed_paths(run, _invocation(run, request.query_params)))


class RunArtifactView(DbtCloudView):
    """The artifact's own bytes (not the envelope: the provider writes the body to a file)."""

    filters = frozenset({"step", "node"})

    def get(self, request: Request, account_id: str, run_id: str, path: str) -> FileResponse:
        run = _run(run_id)
        params = request.query_params
        return artifact_response(run, path, params.get("node", ""), _invocation(run, params))


class NotFoundView(DbtCloudView):
    """Any other path under /api/v2/ or /api/v3/: the envelope's 404."""

    authentication_classes = []
    permission_classes = [AllowAny]  # it serves nothing but the refusal
    filters = None

    def refuse(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise NotFound("No such API endpoint.")

    get = post = put = patch = delete = refuse
