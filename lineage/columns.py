"""Column-level lineage of a snapshot: computed by a queue worker once the snapshot is live
(schedule(), called by the ingest), stored per snapshot (ColumnLineage, ColumnCoverage), read
by the node page, the API and the explorer (node_columns(), column_graph()).

Each model's (and snapshot's) compiled SQL is read by lineage/column_sql.py against the known
columns of the relations it reads: the catalog's and the manifest's (Node.columns), else what
an upstream model's own SQL outputs. Incremental: a model whose compiled SQL and upstream
columns are those of the previous snapshot (the same fingerprint) has its row copied, not
recomputed. A column the SQL does not resolve gets no guessed edge: `resolved` is false, a note
says why, and the model's own dependencies (dbt's graph) stand in.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import ChainMap, defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_q.tasks import async_task
from psycopg.types.json import Jsonb

from dbtlib.manifest import TEST_TYPES
from lineage.column_sql import Relation, SqlColumns, analyse, relation_key
from lineage.models import ColumnCoverage, ColumnCoverageState, ColumnLineage, Edge, Node, Snapshot

__all__ = [
    "ANALYSED_TYPES", "NodeColumns", "column_graph", "compute", "node_columns", "node_names", "schedule",
]  # fmt: skip

logger = logging.getLogger(__name__)

# What has SQL of its own and a relation others read: their columns are resolved (or not);
# every other node's columns (sources, seeds) are where lineage starts.
ANALYSED_TYPES = ("model", "snapshot")
NOT_COMPILED = (
    "this manifest has no compiled SQL for it (dbt parse does not compile; a run, build, compile or docs generate does)"
)
NOT_OUTPUT = "its compiled SQL does not output this column"
STAR_NOT_EXPANDED = "select * from a relation whose columns are not known"
PENDING_NOTE = "column lineage of this snapshot is still being computed"
NOT_COMPUTED_NOTE = "column lineage was not computed for this snapshot"

_TABLE = ColumnLineage._meta.db_table
_NODE = Node._meta.db_table
_EDGE = Edge._meta.db_table


def schedule(snapshot: Snapshot) -> None:
    """The ingest's one call: a pending coverage row now, and the computation sent to a queue
    worker when the ingest commits, so the snapshot is live before its columns are read."""
    ColumnCoverage.objects.create(snapshot=snapshot)
    transaction.on_commit(
        lambda: async_task(
            "lineage.columns.compute", snapshot.pk, task_name=f"column-lineage-{snapshot.pk}", group="lineage"
        ),
        robust=True,
    )


@dataclass
class _Node:
    unique_id: str
    resource_type: str
    relation_name: str
    names: list[str]  # Node.columns' names: the catalog's and the manifest's
    sql_hash: str


@dataclass
class _Work:
    """What one computation collects: rows to write, and rows to copy from snapshot `previous`."""

    previous: int | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)


def compute(snapshot_id: int) -> ColumnCoverage | None:
    """The snapshot's column lineage, stored with its coverage (None: the snapshot is gone).
    One project's computations run one at a time, in order, so each reuses the one before."""
    snapshot = Snapshot.objects.filter(pk=snapshot_id).first()
    if snapshot is None:
        return None
    started = time.perf_counter()
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"lineage-columns:{snapshot.project}"])
            if not Snapshot.objects.filter(pk=snapshot_id).exists():
                return None  # pruned while it waited
            done = ColumnCoverage.objects.filter(snapshot_id=snapshot_id, state=ColumnCoverageState.DONE).first()
            if done is not None:
                return done  # a task delivered twice
            work = _compute(snapshot)
            _write(snapshot.pk, work)
            resolved, known = _counts(snapshot.pk)
            coverage, _ = ColumnCoverage.objects.update_or_create(
                snapshot=snapshot,
                defaults={
                    "state": ColumnCoverageState.DONE,
                    "resolved": resolved,
                    "known": known,
                    "recomputed": len(work.rows),
                    "copied": len(work.copied),
                    "seconds": time.perf_counter() - started,
                    "computed_at": timezone.now(),
                    "error": "",
                },
            )
    except IntegrityError:  # the snapshot was pruned under it
        return None
    except Exception as exc:
        logger.exception("column lineage of snapshot %s failed", snapshot_id)
        ColumnCoverage.objects.filter(snapshot_id=snapshot_id).update(
            state=ColumnCoverageState.FAILED, error=str(exc)[:1000], computed_at=timezone.now()
        )
        raise
    logger.info(
        "column lineage of snapshot %s: %s/%s columns resolved, %s models recomputed, %s copied, %.2f s",
        snapshot_id, resolved, known, coverage.recomputed, coverage.copied, coverage.seconds,
    )  # fmt: skip
    return coverage


def _previous(snapshot: Snapshot) -> int | None:
    """The project's newest earlier snapshot whose column lineage is done: rows to copy from."""
    return (
        ColumnCoverage.objects.filter(
            snapshot__project=snapshot.project, snapshot_id__lt=snapshot.pk, state=ColumnCoverageState.DONE
        )
        .order_by("-snapshot_id")
        .values_list("snapshot_id", flat=True)
        .first()
    )


def _nodes(snapshot_id: int) -> dict[str, _Node]:
    """Every node but tests: its relation, its columns' names and (analysed ones) its SQL's md5."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT unique_id, resource_type, relation_name,
                   ARRAY(SELECT col->>'name' FROM jsonb_array_elements(
                       CASE WHEN jsonb_typeof(columns) = 'array' THEN columns ELSE '[]' END) AS col
                         WHERE coalesce(col->>'name', '') <> ''),
                   CASE WHEN resource_type = ANY(%s) THEN md5(compiled_code) ELSE '' END
            FROM {_NODE} WHERE snapshot_id = %s AND resource_type <> ALL(%s)""",
            [list(ANALYSED_TYPES), snapshot_id, [str(t) for t in TEST_TYPES]],
        )
        return {row[0]: _Node(*row) for row in cursor.fetchall()}


def _parents(snapshot_id: int, analysed: set[str]) -> dict[str, list[str]]:
    parents: dict[str, list[str]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT parent, child FROM {_EDGE} WHERE snapshot_id = %s", [snapshot_id])
        for parent, child in cursor.fetchall():
            if child in analysed:
                parents[child].append(parent)
    return parents


def _topological(analysed: Iterable[str], parents: Mapping[str, list[str]]) -> list[str]:
    """Parents before children (Kahn); anything on a cycle (dbt allows none) last."""
    todo = set(analysed)
    waiting = {uid: sum(1 for p in parents.get(uid, ()) if p in todo) for uid in todo}
    children: dict[str, list[str]] = defaultdict(list)
    for uid in todo:
        for parent in parents.get(uid, ()):
            if parent in todo:
                children[parent].append(uid)
    ready = deque(sorted(uid for uid, n in waiting.items() if n == 0))
    order: list[str] = []
    while ready:
        uid = ready.popleft()
        order.append(uid)
        for child in children[uid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    placed = set(order)
    return order + sorted(todo - placed)


def _merge(first: list[str], then: Iterable[str]) -> list[str]:
    """`first`, then the names of `then` not in it (compared without case)."""
    seen = {name.lower() for name in first}
    merged = list(first)
    for name in then:
        if name.lower() not in seen:
            seen.add(name.lower())
            merged.append(name)
    return merged


def _compute(snapshot: Snapshot) -> _Work:
    nodes = _nodes(snapshot.pk)
    analysed = {uid for uid, n in nodes.items() if n.resource_type in ANALYSED_TYPES}
    parents = _parents(snapshot.pk, analysed)
    work = _Work(previous=_previous(snapshot))
    previous = _previous_rows(work.previous)
    known = {uid: n.names for uid, n in nodes.items() if uid not in analysed}
    relations = {
        relation_key(n.relation_name): Relation(uid, tuple(n.names))
        for uid, n in nodes.items()
        if n.relation_name and uid not in analysed
    }
    changed = [uid for uid in analysed if uid not in previous or previous[uid][0] != nodes[uid].sql_hash]
    sql = _compiled_sql(snapshot.pk, changed)
    fingerprints: dict[str, str] = {}
    for uid in _topological(analysed, parents):
        node = nodes[uid]
        fingerprint = _fingerprint(node, parents.get(uid, ()), nodes, known, fingerprints, analysed)
        fingerprints[uid] = fingerprint
        before = previous.get(uid)
        if before is not None and before[1] == fingerprint:
            work.copied.append(uid)
            outputs = before[2]
        else:
            text = sql[uid] if uid in sql else _compiled_sql(snapshot.pk, [uid]).get(uid, "")
            # Two nodes may share a relation (a seed loaded where a source points): its parents win.
            own = {
                relation_key(nodes[p].relation_name): Relation(p, tuple(known.get(p, ())))
                for p in parents.get(uid, ())
                if p in nodes and nodes[p].relation_name
            }
            row = _row(node, analyse(text, ChainMap(own, relations)) if text.strip() else None, fingerprint)
            work.rows.append(row)
            outputs = row["output_columns"]
        known[uid] = _merge(node.names, outputs)
        if node.relation_name:
            relations[relation_key(node.relation_name)] = Relation(uid, tuple(known[uid]))
    return work


def _previous_rows(snapshot_id: int | None) -> dict[str, tuple[str, str, list[str]]]:
    if snapshot_id is None:
        return {}
    rows = ColumnLineage.objects.filter(snapshot_id=snapshot_id).values_list(
        "unique_id", "sql_hash", "fingerprint", "output_columns"
    )
    return {uid: (sql_hash, fingerprint, outputs) for uid, sql_hash, fingerprint, outputs in rows}


def _compiled_sql(snapshot_id: int, unique_ids: list[str]) -> dict[str, str]:
    if not unique_ids:
        return {}
    rows = Node.objects.filter(snapshot_id=snapshot_id, unique_id__in=unique_ids).values_list(
        "unique_id", "compiled_code"
    )
    return dict(rows.iterator(chunk_size=2000))


def _fingerprint(
    node: _Node,
    parents: Iterable[str],
    nodes: Mapping[str, _Node],
    known: Mapping[str, list[str]],
    fingerprints: Mapping[str, str],
    analysed: set[str],
) -> str:
    """Equal fingerprints, equal results: the SQL, the node's own columns, and each parent's
    relation and known columns (an ephemeral parent, inlined in the SQL: its fingerprint)."""
    digest = hashlib.sha256()
    for part in (node.sql_hash, node.relation_name, *node.names):
        digest.update(part.encode() + b"\x00")
    for parent in sorted(parents):
        entry = nodes.get(parent)
        inlined = entry is not None and parent in analysed and not entry.relation_name
        for part in (
            parent,
            entry.relation_name if entry else "",
            fingerprints.get(parent, "") if inlined else "",
            *known.get(parent, ()),
        ):
            digest.update(part.encode() + b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()


def _row(node: _Node, result: SqlColumns | None, fingerprint: str) -> dict[str, Any]:
    """One ColumnLineage row: the node's known columns, then what its SQL outputs besides."""
    note = NOT_COMPILED if result is None else result.note
    found = {} if result is None else {c.name.lower(): c for c in result.columns}
    star = "*" in found
    outputs = [c.name for c in result.columns if c.name != "*"] if result is not None and not note else []
    entries: list[dict[str, Any]] = []
    for name in _merge(node.names, outputs):
        column = found.get(name.lower())
        if note:
            entries.append({"name": name, "upstream": [], "resolved": False, "note": note})
        elif column is None:
            entries.append(
                {"name": name, "upstream": [], "resolved": False, "note": STAR_NOT_EXPANDED if star else NOT_OUTPUT}
            )
        else:
            entries.append(
                {
                    "name": name,
                    "upstream": [list(edge) for edge in column.upstream],
                    "resolved": column.resolved,
                    "note": column.note,
                }
            )
    return {
        "unique_id": node.unique_id,
        "sql_hash": node.sql_hash,
        "fingerprint": fingerprint,
        "output_columns": outputs,
        "columns": entries,
        "upstream_nodes": sorted({uid for entry in entries for uid, _ in entry["upstream"]}),
        "note": note,
    }


_ROW_FIELDS = ("unique_id", "sql_hash", "fingerprint", "output_columns", "columns", "upstream_nodes", "note")


def _write(snapshot_id: int, work: _Work) -> None:
    """The recomputed rows by COPY, the unchanged ones copied from the previous snapshot in SQL."""
    fields = ", ".join(_ROW_FIELDS)
    with connection.cursor() as cursor:
        if work.copied:
            cursor.execute(
                f"INSERT INTO {_TABLE} (snapshot_id, {fields}) SELECT %s, {fields} FROM {_TABLE} "
                f"WHERE snapshot_id = %s AND unique_id = ANY(%s)",
                [snapshot_id, work.previous, work.copied],
            )
        with cursor.cursor.copy(f"COPY {_TABLE} (snapshot_id, {fields}) FROM STDIN") as copy:
            for row in work.rows:
                copy.write_row((snapshot_id, *(Jsonb(row[f]) if f == "columns" else row[f] for f in _ROW_FIELDS)))


def _counts(snapshot_id: int) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT count(*) FILTER (WHERE (col->>'resolved')::boolean), count(*)
                FROM {_TABLE}, jsonb_array_elements(columns) AS col WHERE snapshot_id = %s""",
            [snapshot_id],
        )
        resolved, known = cursor.fetchone()
    return resolved, known


# --- reading it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeColumns:
    """A node's columns with their lineage, and a note for the node as a whole ("" if none)."""

    columns: list[dict[str, Any]]
    note: str = ""
    analysed: bool = False  # a model or snapshot: its columns come from SQL


def node_columns(snapshot: Snapshot, node: Node) -> NodeColumns:
    """Each column of `node`: name, data_type, description, upstream and downstream (lists of
    {"node", "column"}), resolved, note. Its known columns (catalog, manifest) first, then
    those only its SQL outputs."""
    analysed = node.resource_type in ANALYSED_TYPES
    row = ColumnLineage.objects.filter(snapshot=snapshot, unique_id=node.unique_id).first() if analysed else None
    declared = [c for c in node.columns if isinstance(c, dict)] if isinstance(node.columns, list) else []
    entries = {str(e["name"]).lower(): e for e in row.columns} if row else {}
    names = _merge([str(c.get("name", "")) for c in declared], (str(e["name"]) for e in row.columns) if row else ())
    details = {str(c.get("name", "")).lower(): c for c in declared}
    note = row.note if row else (_missing_note(snapshot) if analysed else "")
    downstream = _downstream(snapshot, node.unique_id)
    columns = []
    for name in names:
        entry = entries.get(name.lower())
        detail = details.get(name.lower(), {})
        columns.append(
            {
                "name": name,
                "data_type": str(detail.get("data_type") or ""),
                "description": str(detail.get("description") or ""),
                "upstream": [{"node": uid, "column": column} for uid, column in entry["upstream"]] if entry else [],
                "downstream": downstream.get(name.lower(), []),
                "resolved": bool(entry["resolved"]) if entry else not analysed,
                "note": (entry["note"] if entry else note) if analysed else "",
            }
        )
    return NodeColumns(columns=columns, note=note, analysed=analysed)


def _missing_note(snapshot: Snapshot) -> str:
    coverage = ColumnCoverage.objects.filter(snapshot=snapshot).first()
    if coverage is None:
        return NOT_COMPUTED_NOTE
    if coverage.state == ColumnCoverageState.FAILED:
        return f"computing column lineage failed: {coverage.error}"
    if coverage.state == ColumnCoverageState.PENDING:
        return PENDING_NOTE
    return NOT_COMPUTED_NOTE


def _downstream(snapshot: Snapshot, unique_id: str) -> dict[str, list[dict[str, str]]]:
    """Column name (lower case) → the columns computed from it, through the GIN index."""
    found: dict[str, list[dict[str, str]]] = defaultdict(list)
    rows = ColumnLineage.objects.filter(snapshot=snapshot, upstream_nodes__contains=[unique_id]).order_by("unique_id")
    for child, columns in rows.values_list("unique_id", "columns"):
        for entry in columns:
            for parent, column in entry["upstream"]:
                if parent == unique_id:
                    found[column.lower()].append({"node": child, "column": entry["name"]})
    return found


MAX_GRAPH_COLUMNS = 2000


def column_graph(snapshot: Snapshot, unique_id: str, column: str) -> dict[str, Any]:
    """A column's upstream and downstream columns, all the way (the explorer's column mode):
    {"columns": [{"node", "column", "depth", "resolved", "note"}], "edges": [[[node, column],
    [node, column]]], "truncated"}; depth < 0 upstream, > 0 downstream; at most MAX_GRAPH_COLUMNS."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    children: dict[str, dict[str, list[dict[str, str]]]] = {}

    def entries(uid: str) -> dict[str, dict[str, Any]]:
        if uid not in rows:
            found = ColumnLineage.objects.filter(snapshot=snapshot, unique_id=uid).values_list("columns", flat=True)
            rows[uid] = {str(e["name"]).lower(): e for e in (found.first() or [])}
        return rows[uid]

    def upstream(uid: str, name: str) -> list[tuple[str, str]]:
        return [(parent, col) for parent, col in entries(uid).get(name.lower(), {}).get("upstream", [])]

    def downstream(uid: str, name: str) -> list[tuple[str, str]]:
        if uid not in children:
            children[uid] = _downstream(snapshot, uid)
        return [(child["node"], child["column"]) for child in children[uid].get(name.lower(), [])]

    seen = {(unique_id, column.lower()): ((unique_id, column), 0)}
    edges: set[tuple[tuple[str, str], tuple[str, str]]] = set()
    truncated = False
    for step, sign in ((upstream, -1), (downstream, 1)):
        todo = deque([((unique_id, column), 0)])
        while todo:
            here, depth = todo.popleft()
            for there in step(*here):
                edges.add((there, here) if sign < 0 else (here, there))
                key = (there[0], there[1].lower())
                if key in seen:
                    continue
                if len(seen) >= MAX_GRAPH_COLUMNS:
                    truncated = True
                    continue
                seen[key] = (there, depth + sign)
                todo.append((there, depth + sign))
    columns = []
    for (uid, name), depth in seen.values():
        entry = entries(uid).get(name.lower())
        columns.append(
            {
                "node": uid,
                "column": name,
                "depth": depth,
                "resolved": bool(entry["resolved"]) if entry else True,
                "note": str(entry["note"]) if entry else "",
            }
        )
    return {"columns": columns, "edges": [[list(a), list(b)] for a, b in sorted(edges)], "truncated": truncated}


def node_names(snapshot: Snapshot, unique_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """unique_id → (name, resource_type), for links to the columns' nodes."""
    rows = Node.objects.filter(snapshot=snapshot, unique_id__in=set(unique_ids)).values_list(
        "unique_id", "name", "resource_type"
    )
    return {uid: (name, resource_type) for uid, name, resource_type in rows}
