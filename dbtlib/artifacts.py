"""Django-free: dbt's run_results.json and sources.json, and the artifact names the portal serves."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbtlib.errors import ArtifactError, ManifestError
from dbtlib.manifest import DbtNode, load_json

# Files a user may download from a run, by name only: those dbt writes to its target path
# and its log (in its log path).
DBT_LOG = "dbt.log"
DOWNLOADABLE = ("manifest.json", "run_results.json", "catalog.json", "sources.json", DBT_LOG)


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


SOURCES_JSON = "sources.json"
FRESHNESS_STATUSES = ("pass", "warn", "error", "runtime error")
_SOURCES_SCHEMA = re.compile(r"/sources/v([0-9]+)\.json$")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class FreshnessOutcome:
    """One source's line of sources.json: how old its newest row was when dbt looked."""

    unique_id: str
    status: str  # one of FRESHNESS_STATUSES
    max_loaded_at: datetime | None
    snapshotted_at: datetime | None
    age_seconds: float | None
    criteria: dict[str, Any]  # {warn_after: {count, period}, error_after: …, filter}
    error: str = ""

    @property
    def source(self) -> str:
        """`raw.users` of `source.inventory_transforms.raw.users`."""
        return self.unique_id.split(".", 2)[-1]


def threshold_seconds(criteria: dict[str, Any], name: str) -> float | None:
    """warn_after or error_after of a freshness criteria in seconds (None when not set)."""
    threshold = criteria.get(name) if isinstance(criteria, dict) else None
    if not isinstance(threshold, dict):
        return None
    count, period = threshold.get("count"), threshold.get("period")
    if not isinstance(count, int | float) or isinstance(count, bool) or period not in _SECONDS:
        return None
    return float(count) * _SECONDS[period]


def read_sources(path: Path) -> list[FreshnessOutcome]:
    """The per-source results of `dbt source freshness` (sources.json, schema v1–v3);
    ArtifactError naming what is wrong when the file is unreadable or not that artifact."""
    try:
        payload = load_json(path, SOURCES_JSON)
    except ManifestError as exc:
        raise ArtifactError(str(exc)) from exc
    schema = str((payload.get("metadata") or {}).get("dbt_schema_version") or "")
    found = _SOURCES_SCHEMA.search(schema)
    if found is None or not 1 <= int(found.group(1)) <= 3:
        raise ArtifactError(f"{SOURCES_JSON} has schema {schema or 'none'!r}, not dbt's sources v1–v3")
    results = payload.get("results")
    if not isinstance(results, list):
        raise ArtifactError(f"{SOURCES_JSON} has no list of results")
    return [_freshness(result) for result in results]


def _freshness(result: Any) -> FreshnessOutcome:
    unique_id = result.get("unique_id") if isinstance(result, dict) else None
    status = result.get("status") if isinstance(result, dict) else None
    if not isinstance(unique_id, str) or not unique_id.startswith("source.") or status not in FRESHNESS_STATUSES:
        raise ArtifactError(f"{SOURCES_JSON} has a result that is not a source's freshness: {str(result)[:200]}")
    age = result.get("max_loaded_at_time_ago_in_s")
    criteria = result.get("criteria")
    return FreshnessOutcome(
        unique_id=unique_id,
        status=status,
        max_loaded_at=_timestamp(result.get("max_loaded_at")),
        snapshotted_at=_timestamp(result.get("snapshotted_at")),
        age_seconds=float(age) if isinstance(age, int | float) and math.isfinite(age) and age >= 0 else None,
        criteria=criteria if isinstance(criteria, dict) else {},
        error=str(result.get("error") or ""),
    )


def _timestamp(value: Any) -> datetime | None:
    """dbt's ISO 8601 times, UTC when they carry no offset; None when missing or garbled."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed is not None and parsed.tzinfo is None else parsed
