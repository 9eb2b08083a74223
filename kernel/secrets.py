"""Secret references: a row names the environment variable that holds a secret on each host
(or NAME_FILE, the path of a file holding it), never the secret itself. Environments' passwords
and git projects' credentials follow one rule for which names may be referenced: a
DBT_ENV_SECRET_* variable (dbt masks those in its logs) or one of
ENVIRONMENT_PASSWORD_VARIABLES, never one of the portal's own."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

SECRET_VARIABLE_PREFIX = "DBT_ENV_SECRET_"  # noqa: S105 - a prefix of variable names
# Never a secret reference, even when ENVIRONMENT_PASSWORD_VARIABLES lists one: besides the
# portal's settings (settings.PORTAL_VARIABLES), cloud credentials, libpq's, dbt's.
PORTAL_VARIABLE_PREFIXES = ("AWS_", "PG", "DBT_")


def secret_variable_problem(name: str, field: str) -> str:
    """Why `name` may not be referenced by `field` ("" when it may)."""
    if name.startswith(SECRET_VARIABLE_PREFIX):
        return ""
    portal = settings.PORTAL_VARIABLES
    if name in portal or f"{name}_FILE" in portal or name.startswith(PORTAL_VARIABLE_PREFIXES):
        own = "one of the portal's own variables"
        return f"{field} may not name {name}, {own}: name a {SECRET_VARIABLE_PREFIX}* one"
    if name in settings.ENVIRONMENT_PASSWORD_VARIABLES:
        return ""
    return (
        f"{field} must name a {SECRET_VARIABLE_PREFIX}* variable (or one listed in "
        f"ENVIRONMENT_PASSWORD_VARIABLES), not {name}"
    )


class SecretUnsetError(LookupError):
    """The referenced secret is set nowhere on this host, or its file cannot be read."""


def read_secret(name: str) -> str:
    """This host's value of the variable `name`, else the content of the file NAME_FILE names."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if not path:
        raise SecretUnsetError(f"{name} (or {name}_FILE) is not set on this host")
    try:
        return Path(path).read_text().rstrip("\n")
    except OSError as exc:
        raise SecretUnsetError(f"{name}_FILE cannot be read: {exc.strerror}") from None
