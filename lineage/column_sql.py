"""Django-free: one model's compiled SQL read by sqlglot into column lineage.

For each column the SQL outputs: the upstream (node, column) pairs it is computed from,
through CTEs, subqueries, unions, joins, aliases and window functions, `select *` expanded
from the upstream relations' known columns (catalog, manifest, else their own SQL). An edge
is kept only when sqlglot names its table and that table is a node with that column among
its known columns; anything else makes the column unresolved, with a note saying why. Never
a guessed edge: lineage/columns.py falls back to the model's own dependencies for those.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.lineage import Node as LineageNode
from sqlglot.lineage import lineage
from sqlglot.optimizer import build_scope, qualify
from sqlglot.schema import MappingSchema

__all__ = ["DIALECT", "MAX_SQL_CHARS", "ColumnEdges", "Relation", "SqlColumns", "analyse", "relation_key"]

# dbt-postgres writes the SQL the portal reads: unquoted names fold to lower case.
DIALECT = "postgres"
# A model's SQL longer than this is left unresolved: sqlglot's time grows with it.
MAX_SQL_CHARS = 200_000
# sqlglot's schema needs a type per column; lineage never looks at it.
_ANY_TYPE = "unknown"
_IDENTIFIER = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')

Key = tuple[str, ...]


@dataclass(frozen=True)
class Relation:
    """A node as a table the SQL may read: its unique_id and its known columns."""

    unique_id: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ColumnEdges:
    name: str
    upstream: tuple[tuple[str, str], ...]  # (unique_id, column), sorted
    resolved: bool
    note: str = ""


@dataclass(frozen=True)
class SqlColumns:
    """What the SQL outputs, in order; `note` says why nothing could be read ("" when it could)."""

    columns: tuple[ColumnEdges, ...] = ()
    note: str = ""


def relation_key(relation_name: str) -> Key:
    """`"db"."Schema".table` as PostgreSQL names it: quoted parts as written, the others in
    lower case (the key sqlglot's qualified tables are compared with)."""
    return tuple(_identifiers(relation_name))


def _identifiers(text: str) -> list[str]:
    return [
        match.group(1).replace('""', '"') if match.group(1) is not None else match.group(2).strip().lower()
        for match in _IDENTIFIER.finditer(text)
    ]


def _table_key(table: exp.Table) -> Key:
    parts = [part for part in (table.args.get("catalog"), table.args.get("db"), table.this) if part is not None]
    return tuple(part.name if part.args.get("quoted") else part.name.lower() for part in parts)


def analyse(sql: str, relations: Mapping[Key, Relation]) -> SqlColumns:
    """The column lineage of one SELECT (a dbt model's compiled SQL). `relations`: every
    node with a relation, by relation_key()."""
    if len(sql) > MAX_SQL_CHARS:
        return SqlColumns(note=f"its compiled SQL is longer than {MAX_SQL_CHARS:,} characters, so it was not read")
    try:
        statements = [s for s in sqlglot.parse(sql, dialect=DIALECT) if s is not None]
        if len(statements) != 1 or not isinstance(statements[0], exp.Query):
            return SqlColumns(note="its compiled SQL is not one SELECT statement")
        expression = statements[0]
        read = {key: relations[key] for key in map(_table_key, expression.find_all(exp.Table)) if key in relations}
        schema = _schema(read)
        expression = qualify.qualify(
            expression, dialect=DIALECT, schema=schema, validate_qualify_columns=False, quote_identifiers=False
        )
        scope = build_scope(expression)
        if scope is None:
            return SqlColumns(note="sqlglot found no query in its compiled SQL")
        # trim_selects=False: no copy of each SELECT per column (half of the walk's time).
        nodes = lineage(None, expression, schema, dialect=DIALECT, scope=scope, copy=False, trim_selects=False)
    except (sqlglot.errors.SqlglotError, RecursionError, ValueError, KeyError, AttributeError, TypeError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return SqlColumns(note=f"sqlglot could not read its compiled SQL: {first_line}")
    return SqlColumns(columns=tuple(_edges(name, node, read) for name, node in nodes.items()))


def _schema(read: Mapping[Key, Relation]) -> MappingSchema:
    """sqlglot's schema of the relations read whose columns are known, all at the depth of the
    deepest key (sqlglot needs one). Its names are taken as they are (normalize=False): keys
    are already as PostgreSQL folds them, and columns as the catalog spells them; built once,
    for both the qualification and the walk."""
    depth = max((len(key) for key in read), default=0)
    nested: dict = {}
    for key, relation in read.items():
        if len(key) != depth or not relation.columns:
            continue
        level = nested
        for part in key[:-1]:
            level = level.setdefault(part, {})
        level[key[-1]] = dict.fromkeys(relation.columns, _ANY_TYPE)
    return MappingSchema(nested, dialect=DIALECT, normalize=False)


def _edges(name: str, node: LineageNode, read: Mapping[Key, Relation]) -> ColumnEdges:
    upstream: set[tuple[str, str]] = set()
    notes: list[str] = []
    for leaf in node.walk():
        if leaf.downstream:
            continue
        found, note = _leaf_edge(leaf, read)
        if found:
            upstream.add(found)
        elif note and note not in notes:
            notes.append(note)
    return ColumnEdges(name=name, upstream=tuple(sorted(upstream)), resolved=not notes, note="; ".join(notes))


def _leaf_edge(leaf: LineageNode, read: Mapping[Key, Relation]) -> tuple[tuple[str, str] | None, str]:
    """A leaf of sqlglot's walk: a column of a table (an edge, or why not), `*` left
    unexpanded, a column of no table, or an expression of no column (a literal: nothing)."""
    parts = _identifiers(leaf.name)
    column = parts[-1] if parts else ""
    if column.strip() == "*":
        return None, "select * from a relation whose columns are not known"
    if isinstance(leaf.expression, exp.Placeholder):
        return None, f"could not tell which relation {column} comes from"
    if not isinstance(leaf.expression, exp.Table):
        return None, ""
    table = leaf.expression
    relation = read.get(_table_key(table))
    if relation is None:
        shown = exp.table_(table.this, db=table.args.get("db"), catalog=table.args.get("catalog")).sql(DIALECT)
        return None, f"reads {shown}, which is not a node of this project"
    if not relation.columns:
        return None, f"the columns of {relation.unique_id} are not known"
    known = {c.lower(): c for c in relation.columns}
    if column.lower() not in known:
        return None, f"{column} is not a known column of {relation.unique_id}"
    return (relation.unique_id, known[column.lower()]), ""
