"""The dbt projects the portal knows: folders under DBT_PROJECTS_DIR with a dbt_project.yml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

PROJECT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")


@dataclass(frozen=True)
class DbtProject:
    name: str  # folder name under dbt_projects/, the id used in URLs and the API
    path: Path

    @property
    def profiles_dir(self) -> Path:
        return self.path.parent


def discover_projects() -> list[DbtProject]:
    root: Path = settings.DBT_PROJECTS_DIR
    if not root.is_dir():
        return []
    return [
        DbtProject(child.name, child)
        for child in sorted(root.iterdir())
        if PROJECT_NAME.match(child.name) and (child / "dbt_project.yml").is_file()
    ]


def get_project(name: str) -> DbtProject | None:
    """The project with that folder name, or None (names are never used as raw paths)."""
    return next((p for p in discover_projects() if p.name == name), None)
