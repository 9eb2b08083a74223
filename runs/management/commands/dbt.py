from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lineage.projects import discover_projects, get_project
from runs.dbt.environment import DBT_EXECUTABLE, dbt_environment


class Command(BaseCommand):
    help = (
        "Run dbt by hand on a project under dbt_projects/ against the portal's warehouse, "
        "e.g. `manage.py dbt inventory_transforms build`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("project")
        parser.add_argument("dbt_args", nargs="+", help="dbt command and options")

    def handle(self, *args, project: str, dbt_args: list[str], **options) -> None:
        found = get_project(project)
        if found is None:
            names = ", ".join(p.name for p in discover_projects()) or "none"
            raise CommandError(f"no dbt project {project!r} (found: {names})")
        argv = [DBT_EXECUTABLE, *dbt_args, "--project-dir", str(found.path), "--profiles-dir", str(found.profiles_dir)]
        sys.stdout.flush()
        os.execve(DBT_EXECUTABLE, argv, dbt_environment(os.environ, settings.DBT_ENV))
