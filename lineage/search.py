"""The site search's side of lineage: the index of the current snapshots (SearchName,
SearchTerm) and the bounded, ranked look-ups over it. Only each project's current snapshot
is indexed, so a search never reads an older one.

Without pg_trgm (the embedded PostgreSQL has none), a name is found by its btree (exact,
prefix) and by one scan of the narrow SearchName rows (substring); tags and columns by the
btree of SearchTerm (exact, prefix); descriptions by a `simple` tsvector (each word of the
search a word prefix)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection

from dbtlib.manifest import TEST_TYPES
from lineage.models import Node, SearchField, SearchName, SearchTerm, Snapshot

# Match tiers, best first: the order of the site search's ranking.
EXACT, PREFIX, SUBSTRING, TAG, COLUMN, DESCRIPTION = range(6)
TIER_NAMES = ("exact", "prefix", "substring", "tag", "column", "description")
MAX_WORDS = 8
SNIPPET = 160

_NODE = Node._meta.db_table
_NAME = SearchName._meta.db_table
_TERM = SearchTerm._meta.db_table
_SNAPSHOT = Snapshot._meta.db_table
_TESTS = [str(t) for t in TEST_TYPES]
_DOC_INDEX = "lineage_searchterm_doc_gin"
_TAG, _TAGGED, _COLUMN, _DESCRIPTION = (
    f.value for f in (SearchField.TAG, SearchField.TAGGED, SearchField.COLUMN, SearchField.DESCRIPTION)
)


def index_current(snapshot_id: int, previous_id: int | None, nodes: Iterable[tuple[int, dict[str, Any]]]) -> None:
    """Index snapshot `snapshot_id` (just made current) and drop `previous_id`'s rows: one COPY
    per table from its nodes as stored (each its id and its lineage.manifest.node_rows row), in
    the ingest's transaction. Names, tags and column names in lower case as words_query and the
    find_* functions make a search's text; a description as the words words_query makes of it."""
    nodes = list(nodes)
    with connection.cursor() as cursor:
        if previous_id is not None:
            cursor.execute(f"DELETE FROM {_NAME} WHERE snapshot_id = %s", [previous_id])
            cursor.execute(f"DELETE FROM {_TERM} WHERE snapshot_id = %s", [previous_id])
        with cursor.cursor.copy(f"COPY {_NAME} (node_id, snapshot_id, name, is_test) FROM STDIN") as copy:
            for node_id, row in nodes:
                copy.write_row((node_id, snapshot_id, row["name"].lower(), row["resource_type"] in _TESTS))
        columns = f"COPY {_TERM} (snapshot_id, node_id, field, term, node_name, document, nodes) FROM STDIN"
        with cursor.cursor.copy(columns) as copy:
            for tag in dict.fromkeys(tag for _, row in nodes for tag in row["tags"]):
                copy.write_row((snapshot_id, None, _TAG, tag.lower(), tag, None, None))
            for field, terms in ((_TAGGED, _tags), (_COLUMN, _column_names)):
                for term, found in _grouped(nodes, terms).items():
                    copy.write_row((snapshot_id, None, field, term, "", None, found))
            for node_id, row in nodes:
                if document := _document(row):
                    copy.write_row((snapshot_id, node_id, _DESCRIPTION, "", row["name"].lower(), document, None))
        # Merge the GIN index's pending list now: left for autovacuum, every description
        # search scans it (2–3 ms at 100,000 nodes).
        cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [_DOC_INDEX])
        cursor.execute(f"ANALYZE {_NAME}, {_TERM}")


def _grouped(nodes: list[tuple[int, dict[str, Any]]], terms: Callable[[dict], Iterable[str]]) -> dict[str, list[int]]:
    """Each term of the nodes (a tag, a column name; lower case) → the nodes that have it, by
    name (lower case, as the C collation orders it): one row per term, not per node and term."""
    grouped: dict[str, list[tuple[str, int]]] = {}
    for node_id, row in nodes:
        name = row["name"].lower()
        for term in dict.fromkeys(terms(row)):
            grouped.setdefault(term, []).append((name, node_id))
    return {term: [node_id for _, node_id in sorted(found)] for term, found in grouped.items()}


def _tags(row: dict[str, Any]) -> Iterable[str]:
    return (tag.lower() for tag in row["tags"])


def _column_names(row: dict[str, Any]) -> Iterable[str]:
    return (column["name"].lower() for column in row["columns"] if column["name"])


_WORD = re.compile(r"[^\W_]+")
_ASCII_WORDS = bytes(c if chr(c).isascii() and chr(c).isalnum() else ord(" ") for c in range(256))  # the rest: spaces
# PostgreSQL's limits: a lexeme of at most 2046 bytes (to_tsvector leaves longer words out),
# a tsvector's lexemes under 1 MB in all. A character is at most 4 bytes.
_MAX_LEXEME = 2046
_MAX_DOCUMENT = (1 << 20) - 1


def _document(row: dict[str, Any]) -> str:
    """A node's description and its columns' as a tsvector literal: its distinct words, as
    words_query makes them of a search ("" when it has none; a huge one: its first words up to
    PostgreSQL's limits). A word holds neither a quote nor a backslash: quoted as it is."""
    text = " ".join([row["description"], *(col["description"] for col in row["columns"])]).lower()
    if text.isascii():  # the same words, 3 times as fast
        words = list(dict.fromkeys(text.encode().translate(_ASCII_WORDS).decode().split()))
    else:
        words = list(dict.fromkeys(_WORD.findall(text)))
    if len(text) > _MAX_LEXEME // 4 and (
        len(text) > _MAX_DOCUMENT // 4 or max(map(len, words), default=0) > _MAX_LEXEME // 4
    ):
        words = _within_limits(words)
    return "'" + "' '".join(words) + "'" if words else ""


def _within_limits(words: list[str]) -> list[str]:
    kept, size = [], 0
    for word in words:
        length = len(word.encode())
        if length > _MAX_LEXEME:
            continue
        size += length
        if size > _MAX_DOCUMENT:
            break
        kept.append(word)
    return kept


@dataclass(frozen=True)
class Hit:
    """One thing lineage found: a node (by name, tag or description), a column or a tag."""

    kind: str  # node, column, tag
    tier: int
    project: str
    name: str
    unique_id: str = ""
    resource_type: str = ""
    description: str = ""
    node_name: str = ""


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def words_query(text: str) -> str:
    """A tsquery matching every word of `text` as a word prefix ('' when it has no word)."""
    words = _WORD.findall(text.lower())[:MAX_WORDS]
    return " & ".join(f"{word}:*" for word in words)


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _node_hit(row: tuple, kind: str = "node") -> Hit:
    tier, project, unique_id, name, resource_type, description = row[:6]
    return Hit(
        kind=kind,
        tier=tier,
        project=project,
        name=name,
        unique_id=unique_id,
        resource_type=resource_type,
        description=(description or "")[:SNIPPET],
    )


_NODE_FIELDS = "sn.project, n.unique_id, n.name, n.resource_type, left(n.description, 400)"


def find_nodes(text: str, limit: int) -> list[Hit]:
    """Up to `limit` nodes of the current snapshots, best first: name exact, prefix,
    substring (tests after the rest, then by name), then tagged `text`, then described by it."""
    q = text.strip().lower()
    if not q or limit <= 0:
        return []
    params = {"q": q, "prefix": like_escape(q) + "%", "contains": "%" + like_escape(q) + "%", "limit": limit}
    # Exact and prefix through the (is_test, name) btree, each half stopping at `limit`;
    # the substring scan only when they found fewer: one sequential scan of the short rows
    # (MATERIALIZED: walking the btree in order instead fetches a row per name, 100+ ms).
    named = _rows(
        f"""
        WITH hit AS (
            (SELECT node_id, snapshot_id, is_test, name FROM {_NAME}
             WHERE NOT is_test AND name LIKE %(prefix)s ORDER BY name LIMIT %(limit)s)
            UNION ALL
            (SELECT node_id, snapshot_id, is_test, name FROM {_NAME}
             WHERE is_test AND name LIKE %(prefix)s ORDER BY name LIMIT %(limit)s)
        )
        SELECT CASE WHEN hit.name = %(q)s THEN {EXACT} ELSE {PREFIX} END AS tier, {_NODE_FIELDS} FROM hit
        JOIN {_NODE} n ON n.id = hit.node_id JOIN {_SNAPSHOT} sn ON sn.id = hit.snapshot_id
        ORDER BY tier, hit.is_test, hit.name, sn.project LIMIT %(limit)s""",
        params,
    )
    if len(named) < limit:
        named += _rows(
            f"""
            WITH matched AS MATERIALIZED (
                SELECT node_id, snapshot_id, is_test, name FROM {_NAME}
                WHERE name LIKE %(contains)s AND name NOT LIKE %(prefix)s
            ), hit AS (
                SELECT * FROM matched ORDER BY is_test, name LIMIT %(limit)s
            )
            SELECT {SUBSTRING}, {_NODE_FIELDS} FROM hit
            JOIN {_NODE} n ON n.id = hit.node_id JOIN {_SNAPSHOT} sn ON sn.id = hit.snapshot_id
            ORDER BY hit.is_test, hit.name, sn.project""",
            {**params, "limit": limit - len(named)},
        )
    hits = [_node_hit(row) for row in named]
    seen = {(h.project, h.unique_id) for h in hits}
    if len(hits) < limit:
        tagged = _rows(
            f"""
            SELECT {TAG}, {_NODE_FIELDS} FROM {_TERM} t
            CROSS JOIN LATERAL unnest(t.nodes[1:%(limit)s]) WITH ORDINALITY AS u(node_id, place)
            JOIN {_NODE} n ON n.id = u.node_id JOIN {_SNAPSHOT} sn ON sn.id = t.snapshot_id
            WHERE t.field = {SearchField.TAGGED.value} AND t.term = %(q)s
            ORDER BY lower(n.name) COLLATE "C", u.place, sn.project LIMIT %(limit)s""",
            {**params, "limit": limit + len(hits)},
        )
        hits += [h for h in map(_node_hit, tagged) if (h.project, h.unique_id) not in seen][: limit - len(hits)]
        seen = {(h.project, h.unique_id) for h in hits}
    tsquery = words_query(q)
    if len(hits) < limit and tsquery:
        # No ORDER BY in the index scan: a common word stops at the first rows found.
        described = _rows(
            f"""
            SELECT {DESCRIPTION}, {_NODE_FIELDS} FROM (
                SELECT node_id, snapshot_id FROM {_TERM}
                WHERE field = {SearchField.DESCRIPTION.value} AND document @@ to_tsquery('simple', %(tsquery)s)
                LIMIT %(limit)s
            ) AS t JOIN {_NODE} n ON n.id = t.node_id JOIN {_SNAPSHOT} sn ON sn.id = t.snapshot_id""",
            {"tsquery": tsquery, "limit": limit + len(hits)},
        )
        found = sorted(map(_node_hit, described), key=lambda h: (h.resource_type in _TESTS, h.name, h.project))
        hits += [h for h in found if (h.project, h.unique_id) not in seen][: limit - len(hits)]
    return hits


def find_columns(text: str, limit: int) -> list[Hit]:
    """Columns of the current snapshots whose name is `text` or starts with it: exact first,
    then by column and node name."""
    q = text.strip().lower()
    if not q or limit <= 0:
        return []
    rows = _rows(
        f"""
        SELECT t.term, {_NODE_FIELDS}, (
            SELECT col FROM jsonb_array_elements(n.columns) AS col WHERE lower(col->>'name') = t.term LIMIT 1
        ) FROM (
            (SELECT snapshot_id, term, nodes, 0 AS exact FROM {_TERM}
             WHERE field = {SearchField.COLUMN.value} AND term = %(q)s)
            UNION ALL
            (SELECT snapshot_id, term, nodes, 1 FROM {_TERM}
             WHERE field = {SearchField.COLUMN.value} AND term LIKE %(prefix)s AND term > %(q)s
             ORDER BY term LIMIT %(limit)s)
        ) AS t CROSS JOIN LATERAL unnest(t.nodes[1:%(limit)s]) WITH ORDINALITY AS u(node_id, place)
        JOIN {_NODE} n ON n.id = u.node_id JOIN {_SNAPSHOT} sn ON sn.id = t.snapshot_id
        ORDER BY t.exact, t.term, lower(n.name) COLLATE "C", u.place, sn.project LIMIT %(limit)s""",
        {"q": q, "prefix": like_escape(q) + "%", "limit": limit},
    )
    hits = []
    for term, project, unique_id, node_name, resource_type, _, column in rows:
        column = json.loads(column) if isinstance(column, str) else column  # Django reads jsonb as text
        column = column if isinstance(column, dict) else {}
        hits.append(
            Hit(
                kind="column",
                tier=COLUMN,
                project=project,
                name=str(column.get("name") or term),
                unique_id=unique_id,
                resource_type=resource_type,
                node_name=node_name,
                description=str(column.get("description") or "")[:SNIPPET],
            )
        )
    return hits


def find_tags(text: str, limit: int) -> list[Hit]:
    """Tags of the current snapshots that are `text` or start with it, exact first."""
    q = text.strip().lower()
    if not q or limit <= 0:
        return []
    rows = _rows(
        f"""
        SELECT t.node_name, sn.project FROM {_TERM} t JOIN {_SNAPSHOT} sn ON sn.id = t.snapshot_id
        WHERE t.field = {SearchField.TAG.value} AND t.term LIKE %(prefix)s
        ORDER BY t.term <> %(q)s, t.term, sn.project LIMIT %(limit)s""",
        {"q": q, "prefix": like_escape(q) + "%", "limit": limit},
    )
    return [Hit(kind="tag", tier=TAG, project=project, name=tag) for tag, project in rows]
