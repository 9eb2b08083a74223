"""Django-free: the profiles.yml a run's dbt reads, generated from its environment, so a
project runs whatever `profile:` name its dbt_project.yml declares. The password is never
written: the profile reads it from DBT_ENV_SECRET_PASSWORD, which dbt masks in its logs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PASSWORD_VARIABLE = "DBT_ENV_SECRET_PASSWORD"  # noqa: S105 - a variable name, not a password


def profile_name(project_dir: Path) -> str:
    """The `profile:` of dbt_project.yml (dbt's default: the project's name)."""
    config = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    return str(config.get("profile") or config.get("name") or project_dir.name)


def write_profile(
    profiles_dir: Path, *, profile: str, target: str, connection: Mapping[str, Any], threads: int
) -> Path:
    """profiles_dir/profiles.yml with one postgres output named `target`; connection has
    host, port, user, dbname and schema."""
    output = {
        "type": "postgres",
        "host": str(connection["host"]),
        "port": int(connection["port"]),
        "user": str(connection["user"]),
        "password": "{{ env_var('" + PASSWORD_VARIABLE + "', '') }}",
        "dbname": str(connection["dbname"]),
        "schema": str(connection["schema"]),
        "threads": int(threads),
        "application_name": "{{ env_var('DBT_APPLICATION_NAME', 'dbt') }}",
    }
    profiles_dir.mkdir(parents=True, exist_ok=True)
    path = profiles_dir / "profiles.yml"
    path.write_text(yaml.safe_dump({profile: {"target": target, "outputs": {target: output}}}, sort_keys=False))
    return path
