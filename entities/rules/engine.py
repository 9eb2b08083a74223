"""Executes rule sets: streams raw rows with a server-side cursor, applies the declared rules
in Python, writes the output with COPY into a fresh table and swaps it in.

The swap (rename, rename, drop) is the only moment the live rules_engine.<name> table is
locked, so readers and mode changes never wait for a whole run. The serving views reach the
table through late-bound functions (entities/router.py), so the swap does not touch them.
The swap takes its lock with a short lock_timeout and tries again, so it never queues
behind a long reader (which would queue every later reader behind the swap).

Cancel and timeout: every connection carries `application_name` (a run's, so the worker
terminates them); `check` is called while waiting for the run lock or the swap and raises
to give up.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from entities.rules.rulesets import RULE_SETS, Collapse, Derive, Lookup, RuleSet

SCHEMA = "rules_engine"
FETCH_ROWS = 20_000
PROGRESS_ROWS = 250_000
# One rules engine run at a time per warehouse: refreshing applications also rewrites
# rules_engine.users, so two refreshes must not swap the same tables at once.
LOCK_KEY = "hashtext('transformation_portal.rules_engine')"
TRY_RUN_LOCK = f"select pg_try_advisory_lock({LOCK_KEY})"
LOCK_HOLDER = (
    "select coalesce(nullif(a.application_name, ''), 'pid ' || a.pid) from pg_locks l"
    " join pg_stat_activity a on a.pid = l.pid"
    f" where l.locktype = 'advisory' and l.granted and l.objsubid = 1 and l.objid = ({LOCK_KEY})::oid"
)
WAIT_SECONDS = 0.5
SWAP_ATTEMPTS = 120

Row = tuple[Any, ...]


class RulesEngineError(Exception):
    """A rule set cannot run (unknown name, missing raw table, a value a rule rejects)."""


@dataclass(frozen=True)
class RuleSetResult:
    rule_set: str
    rows_read: int
    rows_written: int
    seconds: float


def execution_order(name: str, rule_sets: dict[str, RuleSet] = RULE_SETS) -> list[RuleSet]:
    """`name` preceded by the rule sets its lookups read, like dbt's `+model`."""
    if name not in rule_sets:
        raise RulesEngineError(f"no rule set named {name!r}")
    ordered: list[RuleSet] = []

    def visit(rule_set: RuleSet) -> None:
        for dependency in rule_set.depends_on:
            visit(rule_sets[dependency])
        if rule_set not in ordered:
            ordered.append(rule_set)

    visit(rule_sets[name])
    return ordered


@dataclass(frozen=True)
class Guard:
    """How a run stays interruptible: its connections' application_name, `check` (raises to
    give up) called while waiting, `waiting` told why it waits ("" once it goes on), and the
    lock_timeout of each attempt at the swap."""

    application_name: str = "portal-rules-engine"
    check: Callable[[], None] = lambda: None
    waiting: Callable[[str], None] = lambda reason: None
    lock_timeout_ms: int = 2000


def run(
    conninfo: str,
    name: str,
    log: Callable[[str], None] = lambda line: None,
    rule_sets: dict[str, RuleSet] = RULE_SETS,
    guard: Guard = Guard(),  # noqa: B008 - frozen
) -> list[RuleSetResult]:
    """Run rule set `name` and its dependencies against the warehouse at `conninfo`."""
    results = []
    outputs: dict[str, list[Row]] = {}
    order = execution_order(name, rule_sets)
    connect: dict[str, Any] = {"application_name": guard.application_name}
    with (
        psycopg.connect(conninfo, **connect) as reader,
        psycopg.connect(conninfo, autocommit=True, **connect) as writer,
    ):
        _take_run_lock(writer, log, guard)
        writer.autocommit = False
        for rule_set in order:
            started = time.perf_counter()
            log(f"rules engine: {rule_set.name} from {'.'.join(rule_set.source)}")
            lookups = {
                step.name: _lookup_index(rule_sets[step.rule_set], step, outputs)
                for step in rule_set.steps
                if isinstance(step, Lookup)
            }
            counter = _Counter(rule_set.name, log)
            try:
                rows = list(transform(rule_set, counter.count(_stream(reader, rule_set)), lookups))
            except (ValueError, TypeError) as error:
                raise RulesEngineError(
                    f"rule set {rule_set.name}: raw row {counter.rows:,} cannot be transformed ({error})"
                ) from error
            _write(writer, rule_set, rows, log, guard)
            outputs[rule_set.name] = rows
            result = RuleSetResult(rule_set.name, counter.rows, len(rows), time.perf_counter() - started)
            log(
                f"rules engine: {SCHEMA}.{rule_set.name} written, {result.rows_read:,} raw rows -> "
                f"{result.rows_written:,} rows in {result.seconds:.1f} s"
            )
            results.append(result)
    return results


def _take_run_lock(conn: psycopg.Connection, log: Callable[[str], None], guard: Guard) -> None:
    """The one-run-at-a-time lock, waited for in rounds that call `guard.check`."""
    if conn.execute(TRY_RUN_LOCK).fetchone()[0]:
        return
    holder = conn.execute(LOCK_HOLDER).fetchone()
    reason = f"rules engine: waiting for another rules engine run ({holder[0] if holder else 'ending'}) to finish"
    log(reason)
    guard.waiting(reason)
    while True:
        guard.check()
        time.sleep(WAIT_SECONDS)
        if conn.execute(TRY_RUN_LOCK).fetchone()[0]:
            guard.waiting("")
            return


def transform(rule_set: RuleSet, raw_rows: Iterable[Row], lookups: dict[str, dict[Any, Row]]) -> Iterator[Row]:
    """The rule set applied to raw rows (tuples in `source_columns` order); yields output rows."""
    positions = {f"raw.{column}": index for index, column in enumerate(rule_set.source_columns)}
    steps: list[Callable[[list[Any]], None]] = []
    for step in rule_set.steps:
        if isinstance(step, Derive):
            steps.append(_derive_step(step, [positions[name] for name in step.inputs]))
            positions[step.name] = len(positions)
        else:
            steps.append(_lookup_step(lookups[step.name], positions[step.match], len(step.fields)))
            for field in step.fields:
                positions[f"{step.name}.{field}"] = len(positions)
    output = operator.itemgetter(*(positions[column] for column, _ in rule_set.columns))
    dropped = [positions[name] for name in rule_set.drop_when_null]

    def rows() -> Iterator[list[Any]]:
        for raw in raw_rows:
            row = list(raw)
            for step in steps:
                step(row)
            if not any(row[index] is None for index in dropped):
                yield row

    if rule_set.collapse is None:
        return (output(row) for row in rows())
    return (output(row) for row in _collapse(rule_set.collapse, positions, rows()))


def output_index(rule_set: RuleSet, rows: Iterable[Row], column: str) -> dict[Any, Row]:
    position = [name for name, _ in rule_set.columns].index(column)
    return {row[position]: row for row in rows if row[position] is not None}


def _derive_step(step: Derive, inputs: list[int]) -> Callable[[list[Any]], None]:
    rule = step.rule
    if len(inputs) == 1:
        (only,) = inputs

        def derive_one(row: list[Any]) -> None:
            row.append(rule(row[only]))

        return derive_one

    def derive(row: list[Any]) -> None:
        row.append(rule(*[row[index] for index in inputs]))

    return derive


def _lookup_step(index: dict[Any, tuple[Any, ...]], match: int, width: int) -> Callable[[list[Any]], None]:
    missing = (None,) * width

    def lookup(row: list[Any]) -> None:
        row.extend(index.get(row[match], missing))

    return lookup


def _lookup_index(rule_set: RuleSet, step: Lookup, outputs: dict[str, list[Row]]) -> dict[Any, tuple[Any, ...]]:
    names = [name for name, _ in rule_set.columns]
    fields = operator.itemgetter(*(names.index(field) for field in step.fields))
    picked = fields if len(step.fields) > 1 else (lambda row: (fields(row),))
    return {value: picked(row) for value, row in output_index(rule_set, outputs[step.rule_set], step.on).items()}


def _collapse(collapse: Collapse, positions: dict[str, int], rows: Iterable[list[Any]]) -> Iterable[list[Any]]:
    by = positions[collapse.by]
    orders = [(positions[o.column], o.descending, o.nulls_come_first) for o in collapse.prefer]

    def first(a: list[Any], b: list[Any]) -> bool:
        """Whether `a` sorts before `b`."""
        for index, descending, nulls_first in orders:
            x, y = a[index], b[index]
            if x == y:
                continue
            if x is None or y is None:
                return (x is None) == nulls_first
            return (x > y) if descending else (x < y)
        return False

    survivors: dict[Any, list[Any]] = {}
    for row in rows:
        value = row[by]
        current = survivors.get(value)
        if current is None or first(row, current):
            survivors[value] = row
    return survivors.values()


class _Counter:
    """Counts raw rows and reports progress every PROGRESS_ROWS (a run's log line is also
    its heartbeat and its cancellation check)."""

    rows = 0

    def __init__(self, label: str, log: Callable[[str], None]) -> None:
        self.label = label
        self.log = log

    def count(self, rows: Iterable[Row]) -> Iterator[Row]:
        for row in rows:
            self.rows += 1
            if self.rows % PROGRESS_ROWS == 0:
                self.log(f"rules engine: {self.label}: {self.rows:,} raw rows read")
            yield row


def _stream(conn: psycopg.Connection, rule_set: RuleSet) -> Iterator[Row]:
    query = sql.SQL("select {} from {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in rule_set.source_columns),
        sql.Identifier(*rule_set.source),
    )
    try:
        with conn.transaction(), conn.cursor(name=f"rules_{rule_set.name}") as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(query)
            yield from cursor
    except psycopg.errors.UndefinedTable as error:
        raise RulesEngineError(f"{'.'.join(rule_set.source)} does not exist; load raw data first") from error


def _write(
    conn: psycopg.Connection, rule_set: RuleSet, rows: list[Row], log: Callable[[str], None], guard: Guard
) -> None:
    live = sql.Identifier(SCHEMA, rule_set.name)
    staged_name = f"{rule_set.name}__next"
    staged = sql.Identifier(SCHEMA, staged_name)
    columns = sql.SQL(", ").join(sql.Identifier(name) for name, _ in rule_set.columns)
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(SCHEMA)))
        cursor.execute(sql.SQL("drop table if exists {}").format(staged))
        cursor.execute(
            sql.SQL("create table {} ({})").format(
                staged,
                sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(sql_type))
                    for name, sql_type in rule_set.columns
                ),
            )
        )
        with cursor.copy(sql.SQL("copy {} ({}) from stdin").format(staged, columns)) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            sql.SQL("alter table {} add constraint {} primary key ({})").format(
                staged, sql.Identifier(f"{staged_name}_pkey"), sql.Identifier(rule_set.key)
            )
        )
    _swap(conn, rule_set, log, guard)
    with conn.transaction():
        conn.execute(sql.SQL("analyze {}").format(live))


def _swap(conn: psycopg.Connection, rule_set: RuleSet, log: Callable[[str], None], guard: Guard) -> None:
    """Staged table in, live table out; each attempt gives up after lock_timeout (a reader
    holds the table) and the next starts after a pause in which readers go ahead."""
    live = sql.Identifier(SCHEMA, rule_set.name)
    old_name, staged_name = f"{rule_set.name}__old", f"{rule_set.name}__next"
    old = sql.Identifier(SCHEMA, old_name)
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(guard.lock_timeout_ms)))
                cursor.execute(sql.SQL("drop table if exists {}").format(old))
                cursor.execute(sql.SQL("alter table if exists {} rename to {}").format(live, sql.Identifier(old_name)))
                cursor.execute(
                    sql.SQL("alter table {} rename to {}").format(
                        sql.Identifier(SCHEMA, staged_name), sql.Identifier(rule_set.name)
                    )
                )
                cursor.execute(sql.SQL("drop table if exists {}").format(old))
                cursor.execute(
                    sql.SQL("alter index {} rename to {}").format(
                        sql.Identifier(SCHEMA, f"{staged_name}_pkey"), sql.Identifier(f"{rule_set.name}_pkey")
                    )
                )
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == 1:
                log(f"rules engine: {SCHEMA}.{rule_set.name} is being read; the swap waits for its readers")
            guard.check()
            time.sleep(WAIT_SECONDS)
    raise RulesEngineError(
        f"{SCHEMA}.{rule_set.name} was read without pause for {SWAP_ATTEMPTS} attempts: the new output "
        "was not swapped in"
    )
