"""Django-free: what a dbt child process sees."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))

# What dbt needs of the worker's own environment to run; nothing else is passed on (the
# worker's SECRET_KEY, DATABASE_URL, REDIS_URL, e-mail and webhook secrets never reach a
# project's env_var()). Variables a project itself needs are named in DBT_ENV_PASSTHROUGH
# and arrive through `warehouse` (settings.DBT_ENV).
ALLOWED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "VIRTUAL_ENV",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    }
)
ALLOWED_PREFIXES = ("LC_", "PYTHON")


def allowed(name: str) -> bool:
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def dbt_environment(
    base: Mapping[str, str],
    warehouse: Mapping[str, str],
    *,
    project: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """The project's own variables (an environment's env_vars) first, so they override
    nothing; then the allowlisted part of `base` (no DBT_* variable of the worker's), the
    portal's DBT_* and declared pass-through variables (`warehouse`), extras such as
    DBT_APPLICATION_NAME."""
    env = dict(project or {})
    env.update((k, v) for k, v in base.items() if allowed(k))
    env.update(warehouse)
    env.update(extra)
    return env
