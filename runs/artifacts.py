"""Which files of a run may be downloaded: allowlisted names only, never a user path."""

from __future__ import annotations

from pathlib import Path

from django.http import Http404

from runs.dbt.artifacts import DOWNLOADABLE
from runs.models import NodeResult, Run

COMPILED_SQL = "compiled.sql"


def artifact_path(run: Run, name: str, node: str = "") -> Path:
    """The file behind an allowlisted artifact name (COMPILED_SQL needs ?node=<unique_id>)."""
    if not run.target_path:
        raise Http404("This run has no artifacts.")
    target = Path(run.target_path)
    if name in DOWNLOADABLE:
        path = target / name
    elif name == COMPILED_SQL:
        relative = (
            NodeResult.objects.filter(run=run, unique_id=node).values_list("compiled_path", flat=True).first() or ""
        )
        if not relative:
            raise Http404("No compiled SQL for that node in this run.")
        path = (target / relative).resolve()
        if not path.is_relative_to(target.resolve()):
            raise Http404("No compiled SQL for that node in this run.")
    else:
        raise Http404(f"{name!r} is not a downloadable artifact ({', '.join((*DOWNLOADABLE, COMPILED_SQL))}).")
    if not path.is_file():
        raise Http404(f"This run has no {name}.")
    return path
