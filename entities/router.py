"""Every serving view is generated here.

    serving.<entity>  ->  rules:  router.<entity>_rules()
                          shadow: router.<entity>_rules()
                          canary: router.<entity>_dbt() for keys in the first N% of hash buckets,
                                  router.<entity>_rules() for the rest
                          dbt:    router.<entity>_dbt()

The router.* functions are plain SQL functions over rules_engine.<entity> and
core.fct_<entity>. PostgreSQL inlines them into the view's query (so filters on the key still
reach the table), but, unlike a view, a function body does not pin the table it reads: dbt's
table materialization (rename, then DROP ... CASCADE of the old table) and the rules engine's
swap replace their tables without dropping serving.<entity>.

The canary split hashes the key's text with hashtextextended(key, 0) into 10,000 buckets:
bucket < N * 100 goes to dbt. A key's bucket never changes, so a key served by dbt at N%
stays on dbt at any larger N.

Django-free: callers hand in a psycopg connection inside their transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import psycopg
from psycopg import sql

from entities.rules.rulesets import RULE_SETS

FUNCTION_SCHEMA = "router"
BUCKETS = 10_000
SIDES = {"rules": ("rules_engine", "{name}"), "dbt": ("core", "fct_{name}")}
# Modes -> the sides they read.
MODE_SIDES = {"rules": ("rules",), "shadow": ("rules",), "canary": ("dbt", "rules"), "dbt": ("dbt",)}
APPLY_ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 0.5


class RouterError(Exception):
    """The mode cannot be applied (a table is missing or its columns differ)."""


@dataclass(frozen=True)
class ServingView:
    """What serving.<entity> is generated from: the entity, its key column, the view's
    (schema, name) and the mode it serves (`EntityType.serving_view_spec` builds it)."""

    entity: str
    key: str
    relation: tuple[str, str]
    mode: str
    canary_percent: int | None = None

    def at(self, mode: str, canary_percent: int | None) -> ServingView:
        """The same view in another mode."""
        return replace(self, mode=mode, canary_percent=canary_percent)


@dataclass(frozen=True)
class Timeouts:
    """How long a warehouse transaction waits: to connect, per statement, per lock."""

    connect_seconds: int = 3
    statement_ms: int = 5000
    lock_ms: int = 2000


@contextmanager
def warehouse_transaction(
    conninfo: str,
    timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen
) -> Iterator[psycopg.Connection]:
    """A warehouse transaction committed when the block exits cleanly, rolled back otherwise."""
    with psycopg.connect(conninfo, connect_timeout=timeouts.connect_seconds) as conn:
        conn.execute(sql.SQL("set statement_timeout = {}").format(sql.Literal(timeouts.statement_ms)))
        conn.execute(sql.SQL("set lock_timeout = {}").format(sql.Literal(timeouts.lock_ms)))
        yield conn


def columns_of(entity: str) -> tuple[tuple[str, str], ...]:
    rule_set = RULE_SETS.get(entity)
    if rule_set is None:
        raise RouterError(f"entity {entity!r} has no rule set, so its serving columns are unknown")
    return rule_set.columns


def relation(entity: str, side: str) -> tuple[str, str]:
    schema, table = SIDES[side]
    return schema, table.format(name=entity)


def bucket_expression(key: str, alias: str) -> sql.Composed:
    return sql.SQL("(hashtextextended({}::text, 0) & 9223372036854775807) % {}").format(
        sql.Identifier(alias, key), sql.Literal(BUCKETS)
    )


def function_sql(entity: str, side: str) -> sql.Composed:
    columns = columns_of(entity)
    body = sql.SQL("select {} from {}").format(
        sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns), sql.Identifier(*relation(entity, side))
    )
    return sql.SQL("create or replace function {}() returns table ({}) language sql stable parallel safe as {}").format(
        sql.Identifier(FUNCTION_SCHEMA, f"{entity}_{side}"),
        sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns),
        sql.Literal(body.as_string()),
    )


def view_sql(view: ServingView) -> sql.Composed:
    """The serving view's definition for its mode: the single place it is written."""
    entity, key, mode, canary_percent = view.entity, view.key, view.mode, view.canary_percent
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns_of(entity))

    def side(name: str) -> sql.Composed:
        return sql.SQL("select {} from {}() as {}").format(
            columns, sql.Identifier(FUNCTION_SCHEMA, f"{entity}_{name}"), sql.Identifier(name)
        )

    if mode == "canary":
        if canary_percent is None or not 0 < canary_percent < 100:
            raise RouterError("canary needs a percentage between 1 and 99")
        cut = sql.Literal(canary_percent * BUCKETS // 100)
        query = sql.SQL("{} where {} < {}\nunion all\n{} where not ({} < {})").format(
            side("dbt"), bucket_expression(key, "dbt"), cut, side("rules"), bucket_expression(key, "rules"), cut
        )
    elif mode in ("rules", "shadow"):
        query = side("rules")
    elif mode == "dbt":
        query = side("dbt")
    else:
        raise RouterError(f"unknown mode {mode!r}")
    return sql.SQL("create or replace view {} as\n{}").format(sql.Identifier(*view.relation), query)


def check_side(conn: psycopg.Connection, entity: str, side: str) -> None:
    schema, table = relation(entity, side)
    found = conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a"
        " join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped order by a.attnum",
        (schema, table),
    ).fetchall()
    if not found:
        how = "refresh it in rules or shadow mode" if side == "rules" else "refresh it in shadow mode (dbt build)"
        raise RouterError(f"{schema}.{table} does not exist yet: {how} first")
    expected = set(columns_of(entity))
    if set(found) != expected:
        missing = sorted(f"{n} {t}" for n, t in expected - set(found))
        extra = sorted(f"{n} {t}" for n, t in set(found) - expected)
        raise RouterError(
            f"{schema}.{table} does not have the serving columns of {entity}: "
            f"missing {', '.join(missing) or 'none'}; unexpected {', '.join(extra) or 'none'}"
        )


def apply(conn: psycopg.Connection, view: ServingView) -> str:
    """Point the serving view at its mode inside the caller's open transaction; returns the view SQL.

    The DDL waits at most the connection's lock_timeout for a reader to let go, then steps
    back (to a savepoint) so later readers are not queued behind it, and tries again."""
    name = ".".join(view.relation)
    for attempt in range(1, APPLY_ATTEMPTS + 1):
        conn.execute("savepoint router_apply")
        try:
            statement = _apply(conn, view)
        except psycopg.errors.LockNotAvailable as error:
            conn.execute("rollback to savepoint router_apply")
            if attempt == APPLY_ATTEMPTS:
                raise RouterError(f"{name} is being read by a long query; try again when it ends") from error
            time.sleep(RETRY_PAUSE_SECONDS)
        else:
            conn.execute("release savepoint router_apply")
            return statement
    raise AssertionError("unreachable")


def _apply(conn: psycopg.Connection, view: ServingView) -> str:
    if view.mode not in MODE_SIDES:
        raise RouterError(f"unknown mode {view.mode!r}")
    statement = view_sql(view)
    for side in MODE_SIDES[view.mode]:
        check_side(conn, view.entity, side)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(FUNCTION_SCHEMA)))
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(view.relation[0])))
    for side in MODE_SIDES[view.mode]:
        conn.execute(function_sql(view.entity, side))
    try:
        conn.execute(statement)
    except psycopg.errors.InvalidTableDefinition as error:
        raise RouterError(f"{'.'.join(view.relation)} cannot be replaced: {error.diag.message_primary}") from error
    managed = f"Managed by Transformation Portal: {view.entity} in mode {mode_text(view.mode, view.canary_percent)}"
    conn.execute(sql.SQL("comment on view {} is {}").format(sql.Identifier(*view.relation), sql.Literal(managed)))
    return statement.as_string(conn)


def mode_text(mode: str, canary_percent: int | None) -> str:
    return f"canary {canary_percent}%" if mode == "canary" else mode


def current_definition(conn: psycopg.Connection, serving: tuple[str, str]) -> str | None:
    row = conn.execute(
        "select pg_get_viewdef(c.oid, true) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = %s and c.relkind = 'v'",
        serving,
    ).fetchone()
    return row[0] if row else None
