"""Django-free: dbt's run_results.json, and the artifact names the portal serves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runs.dbt.manifest import DbtNode

# Files a user may download from a run, by name only: those dbt writes to its target path
# and its log (in its log path).
DBT_LOG = "dbt.log"
DOWNLOADABLE = ("manifest.json", "run_results.json", "catalog.json", "sources.json", DBT_LOG)


class ArtifactError(Exception):
    """An artifact dbt should have written is missing or unreadable."""


@dataclass(frozen=True)
class NodeOutcome:
    unique_id: str
    status: str
    execution_time: float | None
    started_at: str | None
    completed_at: str | None
    rows_affected: int | None
    failures: int | None
    message: str

    def as_lineage_result(self) -> dict[str, Any]:
        return {
            "unique_id": self.unique_id,
            "status": self.status,
            "execution_time": self.execution_time or 0.0,
            "completed_at": self.completed_at,
            "message": self.message,
        }


def read_run_results(path: Path) -> list[NodeOutcome]:
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path.name}: {exc}") from exc
    outcomes = []
    for result in payload.get("results") or []:
        timing = result.get("timing") or []
        starts = [t.get("started_at") for t in timing if t.get("started_at")]
        ends = [t.get("completed_at") for t in timing if t.get("completed_at")]
        rows = (result.get("adapter_response") or {}).get("rows_affected")
        outcomes.append(
            NodeOutcome(
                unique_id=result["unique_id"],
                status=str(result.get("status") or ""),
                execution_time=result.get("execution_time"),
                started_at=min(starts) if starts else None,
                completed_at=max(ends) if ends else None,
                rows_affected=rows if isinstance(rows, int) and rows >= 0 else None,
                failures=result.get("failures"),
                message=str(result.get("message") or ""),
            )
        )
    return outcomes


def compiled_sql_path(target_path: Path, node: DbtNode) -> str:
    """Where dbt wrote a node's compiled SQL, relative to target_path ('' if nowhere)."""
    if not node.package_name or not node.original_file_path:
        return ""
    folder = Path("compiled") / node.package_name / node.original_file_path
    for candidate in (folder, folder / node.path):
        if candidate.suffix == ".sql" and (target_path / candidate).is_file():
            return str(candidate)
    return ""
