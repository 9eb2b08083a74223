"""The parity gate: a switch to canary or dbt needs the latest parity report at the entity's
threshold, made on the current inputs. A report records a fingerprint of what its verdict
rests on: the raw tables both engines read (row count and an order-independent sum of row
hashes, computed inside PostgreSQL), the files of the dbt project the dbt side is built from
(its manifest is parsed from them, macros included) and the rule set's code. A report whose
inputs have changed since is refused: only a refresh on the current inputs is evidence."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from psycopg import sql

from entities.models import PARITY_GATED, EntityType, ModeChangeRequest, ParityReport
from entities.rules import rulesets
from kernel.errors import ErrorCode, RequestError
from lineage.projects import get_project, pin

# Build output and tool state, not inputs.
_NOT_PROJECT_INPUT = frozenset({"target", "logs", "dbt_packages", "__pycache__"})
_RULES_DIR = Path(rulesets.__file__).parent
_RULE_SET_FILES = ("rulesets.py", "functions.py")

_RAW_DIGEST = "select count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0) from {} as t"


def raw_tables(name: str) -> list[tuple[str, str]]:
    """The raw tables the rule set `name` reads, itself and through its lookups."""
    found: dict[str, tuple[str, str]] = {}
    pending = [name]
    while pending:
        rule_set = rulesets.RULE_SETS.get(pending.pop())
        if rule_set is not None and rule_set.name not in found:
            found[rule_set.name] = rule_set.source
            pending.extend(rule_set.depends_on)
    return sorted(found.values())


def raw_digests(conninfo: str, tables: list[tuple[str, str]]) -> dict[str, str]:
    digests: dict[str, str] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for schema, table in tables:
            try:
                count, total = conn.execute(sql.SQL(_RAW_DIGEST).format(sql.Identifier(schema, table))).fetchone()
            except psycopg.errors.UndefinedTable:
                digests[f"{schema}.{table}"] = "missing"
            else:
                digests[f"{schema}.{table}"] = f"{count}:{total}"
    return digests


def files_digest(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def project_digest(project_dir: Path) -> str:
    files = [
        path
        for path in project_dir.rglob("*")
        if path.is_file()
        and not any(part in _NOT_PROJECT_INPUT or part.startswith(".") for part in path.relative_to(project_dir).parts)
    ]
    return files_digest(files, project_dir)


def _project_input(name: str) -> str:
    """A folder project's files' digest; a git project's branch head (what its runs execute)."""
    project = get_project(name)
    if project is not None and project.git is not None:
        return f"commit {pin(project)[0]}"
    return project_digest(project.path) if project and project.path else "missing"


def fingerprint(entity: EntityType) -> dict[str, Any]:
    """The current inputs of `entity`'s parity: recorded on a report, compared at approval."""
    return {
        "raw": raw_digests(settings.WAREHOUSE_CONNINFO, raw_tables(entity.name)),
        "dbt_project": _project_input(entity.dbt_project),
        "rule_set": files_digest([_RULES_DIR / name for name in _RULE_SET_FILES], _RULES_DIR),
    }


def changed_inputs(entity: EntityType, recorded: dict[str, Any]) -> str:
    """What has changed since `recorded` was taken, in words ("" when nothing has)."""
    if not recorded:
        return "it was made before reports recorded their inputs"
    current = fingerprint(entity)
    changed = [table for table, digest in current["raw"].items() if recorded["raw"].get(table) != digest]
    if recorded["dbt_project"] != current["dbt_project"]:
        changed.append(f"the dbt project {entity.dbt_project}")
    if recorded["rule_set"] != current["rule_set"]:
        changed.append("the rules engine's rule sets")
    return f"{', '.join(changed)} changed since it was made" if changed else ""


def refusal(entity: EntityType, request: ModeChangeRequest, latest: ParityReport | None) -> RequestError | None:
    """Why the parity gate is closed for `request` (None: open): no report at the threshold,
    or the report's inputs have changed since it was made."""
    if request.mode not in PARITY_GATED:
        return None
    if not entity.gate_allows(request.mode, latest):
        found = (
            f"the latest parity report #{latest.pk} is {latest.percent_display}%"
            if latest
            else "there is no parity report yet (refresh in shadow mode)"
        )
        return RequestError(
            f"Parity gate: {found}, below the threshold of {entity.parity_threshold}% "
            f"for {request.to_label}. An admin may override with a reason.",
            code=ErrorCode.PARITY_GATE,
            parity_report=latest.pk if latest else None,
        )
    changed = changed_inputs(entity, latest.inputs)
    if changed:
        return RequestError(
            f"Parity gate: the latest parity report #{latest.pk} is stale: {changed}. "
            f"Refresh {entity.name} again for a report on the current inputs, then approve.",
            code=ErrorCode.PARITY_STALE,
            parity_report=latest.pk,
        )
    return None
