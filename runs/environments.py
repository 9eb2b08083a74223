"""Environments: per project, where its runs connect. Each run's dbt reads a profiles.yml
generated from its environment (dbtlib/profiles.py); the password comes from the worker's
own environment variable named by the environment (or NAME_FILE), never from the database.

Who may change what: the connection (host, port, user, dbname, password_env, env_vars) is an
admin's; operators create environments on the portal's own warehouse (a blank connection),
change their name, target, schema, threads and default, and delete the ones without a
connection of their own. Which variables: password_env names a DBT_ENV_SECRET_* variable (or
one of ENVIRONMENT_PASSWORD_VARIABLES), never one of the portal's own; env_vars names start
with DBT_VAR_, a prefix dbt gives no meaning to. Both rules are checked again when a run
starts, so a row stored before them never sends a worker secret anywhere."""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.models import Capability
from accounts.permissions import can
from audit.models import Source
from audit.services import record, snapshot
from dbtlib.commands import check_target
from dbtlib.profiles import PASSWORD_VARIABLE, profile_name, write_profile
from kernel.errors import ErrorCode, RequestError, dbt_input_refused
from kernel.secrets import SecretUnsetError, read_secret, secret_variable_problem
from lineage.projects import get_project
from runs.models import Environment, Job, Run

ENVIRONMENT_FIELDS = (
    "name", "target_name", "host", "port", "user", "dbname", "schema", "password_env", "threads", "env_vars",
)  # fmt: skip
CONNECTION_FIELDS = ("host", "port", "user", "dbname", "password_env", "env_vars")
# A project's own variables: no flag of dbt, no DBT_ENGINE_/DBT_ENV_* name dbt interprets,
# nothing libpq (PG*), Python, the loader, git or OpenSSL reads.
PROJECT_VARIABLE_PREFIX = "DBT_VAR_"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,99}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_$-]{1,100}$")
# The portal's own warehouse variables (dbt_projects/profiles.yml, for dbt at a shell): a run
# reads its generated profile instead, so they are not passed on to its dbt.
PORTAL_CONNECTION_VARIABLES = frozenset({"DBT_HOST", "DBT_PORT", "DBT_USER", "DBT_PASSWORD", "DBT_DBNAME"})


class EnvironmentUnusableError(RequestError):
    """An environment a run cannot use (its password variable is not set …)."""


def default_environment(project: str) -> Environment:
    """The project's default environment; `dev` on the portal's own warehouse is made the
    first time a project without one is used, so a dropped-in project runs at once."""
    found = Environment.objects.filter(project=project, is_default=True).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            environment, created = Environment.objects.get_or_create(
                project=project, name="dev", defaults={"is_default": True, "target_name": "dev"}
            )
            if created:
                after = environment_snapshot(environment)
                record("system", "environment.create", environment, after=after, source=Source.SYSTEM)
    except IntegrityError:  # made at the same moment by another request
        return Environment.objects.get(project=project, is_default=True)
    return environment


def project_default(project: str) -> Environment:
    """The project's default environment for a read: the stored one, else the `dev` that
    default_environment would make (unsaved: a read never writes)."""
    found = Environment.objects.filter(project=project, is_default=True).first()
    return found or Environment(project=project, name="dev", is_default=True, target_name="dev")


def may_set_connection(actor: Any) -> bool:
    """Admins (and the portal's own code, a system actor) set an environment's connection."""
    return isinstance(actor, str) or can(actor, Capability.ADMINISTER)


def _blank(value: Any) -> bool:
    return value in (None, "", {})


def check_connection_change(actor: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    """RequestError 403 on the first connection field `after` changes from `before`, unless
    the actor may set connections."""
    changed = [
        name
        for name in CONNECTION_FIELDS
        if name in after and not (_blank(before.get(name)) and _blank(after[name])) and before.get(name) != after[name]
    ]
    if changed and not may_set_connection(actor):
        raise RequestError(
            f"only an admin may set an environment's connection ({', '.join(changed)}); "
            "leave it blank for the portal's warehouse",
            field=changed[0],
            code=ErrorCode.PERMISSION_DENIED,
        )


def password_variable_problem(name: str) -> str:
    """Why `name` may not hold an environment's password ("" when it may)."""
    return secret_variable_problem(name, "password_env")


def env_vars_problem(env_vars: dict[str, Any]) -> str:
    """Why these env_vars may not be set for dbt ("" when they may)."""
    refused = sorted(name for name in env_vars if not name.startswith(PROJECT_VARIABLE_PREFIX))
    if refused:
        return f"env_vars names must start with {PROJECT_VARIABLE_PREFIX}; refused: {', '.join(refused)}"
    return ""


def _text(fields: dict, name: str, pattern: re.Pattern | None = None, what: str = "") -> str:
    value = fields.get(name)
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or (pattern and not pattern.fullmatch(value)):
        raise RequestError(f"{name} must be {what or 'text'}", field=name)
    return value


def check_schema(value: str, field: str) -> str:
    """A schema a run may write as its own: never one of PROTECTED_SCHEMAS."""
    if value.lower() in settings.PROTECTED_SCHEMAS:
        protected = ", ".join(settings.PROTECTED_SCHEMAS)
        raise RequestError(f"{field} may not be a protected schema ({protected}): the portal owns it", field=field)
    return value


@dbt_input_refused()
def validate_environment(fields: dict[str, Any], *, project: str) -> dict[str, Any]:
    """The clean fields of an environment of `project`; RequestError naming the field."""
    if get_project(project) is None:
        raise RequestError(f"no dbt project {project!r}", field="project")
    name = _text(fields, "name", _NAME, "1-100 letters, digits, spaces, '.', '_' or '-'")
    if not name:
        raise RequestError("an environment needs a name", field="name")
    port = fields.get("port")
    if port in ("", None):
        port = None
    elif isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RequestError("port must be a number from 1 to 65535", field="port")
    threads = fields.get("threads")
    threads = 4 if threads in ("", None) else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 64:
        raise RequestError("threads must be between 1 and 64", field="threads")
    env_vars = fields.get("env_vars") or {}
    if not isinstance(env_vars, dict) or not all(
        isinstance(k, str) and _VARIABLE.fullmatch(k) and isinstance(v, str) for k, v in env_vars.items()
    ):
        raise RequestError("env_vars must be an object of NAME → text", field="env_vars")
    if problem := env_vars_problem(env_vars):
        raise RequestError(problem, field="env_vars")
    password_env = _text(fields, "password_env", _VARIABLE, "an environment variable name")
    if password_env and (problem := password_variable_problem(password_env)):
        raise RequestError(problem, field="password_env")
    host = _text(fields, "host", re.compile(r"^[^\s'\"{}]{1,255}$"), "a host name, address or socket directory")
    return {
        "name": name,
        "target_name": check_target(_text(fields, "target_name") or "dev"),
        "host": host,
        "port": port,
        "user": _text(fields, "user", _IDENTIFIER, "a database user name"),
        "dbname": _text(fields, "dbname", _IDENTIFIER, "a database name"),
        "schema": check_schema(_text(fields, "schema", _IDENTIFIER, "a schema name"), "schema"),
        "password_env": password_env,
        "threads": threads,
        "env_vars": env_vars,
    }


def environment_snapshot(environment: Environment) -> dict[str, Any]:
    """What the audit keeps of an environment: env_vars by name, never their values."""
    return snapshot(environment) | {"env_vars": sorted(environment.env_vars or {})}


def create_environment(*, actor: Any, source: str, project: str, **fields: Any) -> Environment:
    check_connection_change(actor, {}, fields)
    clean = validate_environment(fields, project=project)
    with transaction.atomic():
        if Environment.objects.filter(project=project, name=clean["name"]).exists():
            raise RequestError(f"project {project} already has an environment {clean['name']!r}", field="name")
        is_default = bool(fields.get("is_default")) or not Environment.objects.filter(project=project).exists()
        if is_default:
            Environment.objects.filter(project=project, is_default=True).update(is_default=False)
        environment = Environment.objects.create(
            project=project,
            is_default=is_default,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            **clean,
        )
        record(actor, "environment.create", environment, after=environment_snapshot(environment), source=source)
    return environment


def update_environment(environment: Environment, *, actor: Any, source: str, **fields: Any) -> Environment:
    stored = {name: getattr(environment, name) for name in ENVIRONMENT_FIELDS}
    check_connection_change(actor, stored, fields)
    merged = stored | fields
    clean = validate_environment(merged, project=environment.project)
    with transaction.atomic():
        if Environment.objects.filter(project=environment.project, name=clean["name"]).exclude(pk=environment.pk):
            raise RequestError(f"an environment {clean['name']!r} exists already", field="name")
        before = environment_snapshot(environment)
        if fields.get("is_default") and not environment.is_default:
            Environment.objects.filter(project=environment.project, is_default=True).update(is_default=False)
            environment.is_default = True
        for name, value in clean.items():
            setattr(environment, name, value)
        environment.save()
        after = environment_snapshot(environment)
        record(actor, "environment.update", environment, before=before, after=after, source=source)
    return environment


def delete_environment(environment: Environment, *, actor: Any, source: str) -> None:
    stored = {name: getattr(environment, name) for name in CONNECTION_FIELDS}
    check_connection_change(actor, stored, dict.fromkeys(CONNECTION_FIELDS))
    if Job.objects.filter(Q(environment=environment) | Q(deferring_environment=environment)).exists():
        message = (
            f"environment {environment.name!r} is used by jobs (or CI jobs defer to it): move or delete them first"
        )
        raise RequestError(message, field="id", code=ErrorCode.CONFLICT)
    if Run.objects.active().filter(environment=environment).exists():  # it would run on the default one
        message = f"environment {environment.name!r} has queued or running runs: wait for them or cancel them"
        raise RequestError(message, field="id", code=ErrorCode.CONFLICT)
    with transaction.atomic():
        before = environment_snapshot(environment)
        record(actor, "environment.delete", environment, before=before, source=source)
        environment.delete()


def connection(environment: Environment, schema: str = "") -> dict[str, Any]:
    """Host, port, user, dbname and schema: the environment's, each blank one the portal's
    own warehouse value (so the demo's `dev` is the embedded warehouse)."""
    portal = settings.WAREHOUSE
    return {
        "host": environment.host or portal["host"],
        "port": environment.port or portal["port"],
        "user": environment.user or portal["user"],
        "dbname": environment.dbname or portal["dbname"],
        "schema": schema or environment.schema or os.environ.get("DBT_SCHEMA", "public"),
    }


def on_portal_warehouse(environment: Environment) -> bool:
    """Whether its dbt connects to the portal's own warehouse server (blank host and port)."""
    return not environment.host and environment.port in (None, settings.WAREHOUSE["port"])


def _unusable(environment: Environment, problem: str, field: str) -> EnvironmentUnusableError:
    return EnvironmentUnusableError(f"environment {environment.name!r}: {problem}", field=field)


def password(environment: Environment) -> str:
    """The password from the worker's environment: the variable password_env names, else the
    file NAME_FILE names; with no password_env, on the portal's warehouse server, the portal's
    warehouse password. EnvironmentUnusableError when the name breaks the password rule (a
    row stored before it) or the variable is set nowhere."""
    name = environment.password_env
    if not name:
        return str(settings.WAREHOUSE["password"] or "") if on_portal_warehouse(environment) else ""
    if problem := password_variable_problem(name):
        raise _unusable(environment, problem, "password_env")
    try:
        return read_secret(name)
    except SecretUnsetError as exc:
        if f"{name}_FILE" in os.environ:
            raise EnvironmentUnusableError(str(exc), field="password_env") from None
    raise EnvironmentUnusableError(
        f"environment {environment.name!r} reads its password from {name} (or {name}_FILE), "
        "which is not set for this worker",
        field="password_env",
    )


@dataclass(frozen=True)
class RunVariables:
    """What a run's dbt gets besides the worker's allowlisted variables: the project's own
    (the environment's env_vars, DBT_VAR_* only; they override nothing) and the portal's
    (its DBT_* and pass-through variables, the password)."""

    project: dict[str, str]
    portal: dict[str, str]


def prepare_profile(
    profiles_dir: Path,
    environment: Environment,
    *,
    project_dir: Path,
    target: str = "",
    schema: str = "",
    threads: int | None = None,
) -> RunVariables:
    """Check the environment against the password and env var rules (EnvironmentUnusableError
    naming the field), write the run's profiles.yml, and return its dbt's variables."""
    if problem := env_vars_problem(environment.env_vars):
        raise _unusable(environment, problem, "env_vars")
    secret = password(environment)
    write_profile(
        profiles_dir,
        profile=profile_name(project_dir),
        target=target or environment.target_name,
        connection=connection(environment, schema),
        threads=threads or environment.threads,
    )
    return RunVariables(project=dict(environment.env_vars), portal={**portal_variables(), PASSWORD_VARIABLE: secret})


def portal_variables() -> dict[str, str]:
    """The portal's variables any dbt it starts gets (runs, validation's parse): DBT_ENV
    without the portal's own connection (PORTAL_CONNECTION_VARIABLES): dbt connects through
    the profile, and a project's env_var() must not read the portal's warehouse password."""
    return {k: v for k, v in settings.DBT_ENV.items() if k not in PORTAL_CONNECTION_VARIABLES}


def project_number(name: str) -> int:
    """A project folder's number where a number is wanted (dbt Cloud's project ids): the
    CRC-32 of its name, 31 bits so positive in any client, the same on every host."""
    return zlib.crc32(name.encode()) >> 1


# dbt Cloud's reason categories (DBT_CLOUD_RUN_REASON_CATEGORY) by the door a run came through.
REASON_CATEGORIES: dict[str, str] = {Source.SCHEDULE: "scheduled", Source.API: "api"}


def cloud_variables(run: Run, environment: Environment) -> dict[str, str]:
    """The DBT_CLOUD_* variables dbt Cloud gives each dbt invocation of a run (in `environment`,
    the one it runs in), and their DBT_ENV_CUSTOM_ENV_* twins (dbt writes those into
    run_results.json's metadata.env), so a project or a client reading its artifacts finds the
    run as under dbt Cloud."""
    door = dict(Source.choices).get(run.source, run.source)
    reason = run.cause or f"Kicked off via the portal's {door}"
    values = {
        "DBT_CLOUD_ACCOUNT_ID": str(settings.PORTAL_ACCOUNT_ID),
        "DBT_CLOUD_PROJECT_ID": str(project_number(run.project)),
        "DBT_CLOUD_ENVIRONMENT_ID": str(environment.pk),
        "DBT_CLOUD_JOB_ID": str(run.job_id or ""),
        "DBT_CLOUD_RUN_ID": str(run.pk),
        "DBT_CLOUD_RUN_REASON": reason,
        "DBT_CLOUD_RUN_REASON_CATEGORY": REASON_CATEGORIES.get(run.source, "other"),
    }
    return {**values, **{f"DBT_ENV_CUSTOM_ENV_{name}": value for name, value in values.items()}}


def write_target(environment: Environment, schema: str = "") -> str:
    """Where a run's dbt writes: host, port, database and schema of the resolved connection."""
    where = connection(environment, schema)
    return f"{str(where['host']).lower()}:{where['port']}/{where['dbname']}/{where['schema']}"
