"""Environments: per project, where its runs connect. Each run's dbt reads a profiles.yml
generated from its environment (runs/dbt/profiles.py); the password comes from the worker's
own environment variable named by the environment (or NAME_FILE), never from the database."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from audit.models import Source
from audit.services import record, snapshot
from lineage.projects import get_project
from runs.dbt.commands import check_target
from runs.dbt.profiles import PASSWORD_VARIABLE, profile_name, write_profile
from runs.models import Environment, Job
from transformation_portal.errors import ErrorCode, RequestError

ENVIRONMENT_FIELDS = (
    "name", "target_name", "host", "port", "user", "dbname", "schema", "password_env", "threads", "env_vars",
)  # fmt: skip
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
                record("system", "environment.create", environment, after=snapshot(environment), source=Source.SYSTEM)
    except IntegrityError:  # made at the same moment by another request
        return Environment.objects.get(project=project, is_default=True)
    return environment


def _text(fields: dict, name: str, pattern: re.Pattern | None = None, what: str = "") -> str:
    value = fields.get(name)
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or (pattern and not pattern.match(value)):
        raise RequestError(f"{name} must be {what or 'text'}", field=name)
    return value


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
        isinstance(k, str) and _VARIABLE.match(k) and isinstance(v, str) for k, v in env_vars.items()
    ):
        raise RequestError("env_vars must be an object of NAME → text", field="env_vars")
    if PASSWORD_VARIABLE in env_vars or PORTAL_CONNECTION_VARIABLES & set(env_vars):
        raise RequestError(
            f"env_vars may not set {PASSWORD_VARIABLE} or the portal's DBT_* variables", field="env_vars"
        )
    host = _text(fields, "host", re.compile(r"^[^\s'\"{}]{1,255}$"), "a host name, address or socket directory")
    return {
        "name": name,
        "target_name": check_target(_text(fields, "target_name") or "dev"),
        "host": host,
        "port": port,
        "user": _text(fields, "user", _IDENTIFIER, "a database user name"),
        "dbname": _text(fields, "dbname", _IDENTIFIER, "a database name"),
        "schema": _text(fields, "schema", _IDENTIFIER, "a schema name"),
        "password_env": _text(fields, "password_env", _VARIABLE, "an environment variable name"),
        "threads": threads,
        "env_vars": env_vars,
    }


def create_environment(*, actor: Any, source: str, project: str, **fields: Any) -> Environment:
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
        record(actor, "environment.create", environment, after=snapshot(environment), source=source)
    return environment


def update_environment(environment: Environment, *, actor: Any, source: str, **fields: Any) -> Environment:
    merged = {name: getattr(environment, name) for name in ENVIRONMENT_FIELDS} | fields
    clean = validate_environment(merged, project=environment.project)
    with transaction.atomic():
        if Environment.objects.filter(project=environment.project, name=clean["name"]).exclude(pk=environment.pk):
            raise RequestError(f"an environment {clean['name']!r} exists already", field="name")
        before = snapshot(environment)
        if fields.get("is_default") and not environment.is_default:
            Environment.objects.filter(project=environment.project, is_default=True).update(is_default=False)
            environment.is_default = True
        for name, value in clean.items():
            setattr(environment, name, value)
        environment.save()
        record(actor, "environment.update", environment, before=before, after=snapshot(environment), source=source)
    return environment


def delete_environment(environment: Environment, *, actor: Any, source: str) -> None:
    if Job.objects.filter(environment=environment).exists():
        message = f"environment {environment.name!r} is used by jobs: move or delete them first"
        raise RequestError(message, field="id", code=ErrorCode.CONFLICT)
    with transaction.atomic():
        before = snapshot(environment)
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


def password(environment: Environment) -> str:
    """The password from the worker's environment: the variable password_env names, else the
    file NAME_FILE names; with no password_env and no host of its own, the portal's warehouse
    password. EnvironmentUnusableError when the named variable is set nowhere."""
    name = environment.password_env
    if not name:
        return "" if environment.host else str(settings.WAREHOUSE["password"] or "")
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().rstrip("\n")
        except OSError as exc:
            message = f"{name}_FILE cannot be read: {exc.strerror}"
            raise EnvironmentUnusableError(message, field="password_env") from None
    raise EnvironmentUnusableError(
        f"environment {environment.name!r} reads its password from {name} (or {name}_FILE), "
        "which is not set for this worker",
        field="password_env",
    )


def prepare_profile(
    profiles_dir: Path,
    environment: Environment,
    *,
    project_dir: Path,
    target: str = "",
    schema: str = "",
    threads: int | None = None,
) -> dict[str, str]:
    """Write the run's profiles.yml; returns the variables its dbt needs besides the portal's
    (the password, the environment's extra variables)."""
    write_profile(
        profiles_dir,
        profile=profile_name(project_dir),
        target=target or environment.target_name,
        connection=connection(environment, schema),
        threads=threads or environment.threads,
    )
    return {**environment.env_vars, PASSWORD_VARIABLE: password(environment)}
