"""What the rules engine computes, per entity type, as data: output columns derived from raw
columns by named rules, lookups into another rule set's output, rows dropped, and duplicate
collapsing. The engine (engine.py) executes these declarations; nothing here touches a database.

Input names: `raw.<column>` is a raw column, a bare name an output column computed by an
earlier step, `<lookup>.<field>` a field of a lookup's matched row (None when unmatched).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from entities.rules import functions as f


@dataclass(frozen=True)
class Derive:
    """An output column: `rule(*inputs)`. `output=False` keeps it as a working value only."""

    name: str
    sql_type: str
    rule: Callable[..., Any]
    inputs: tuple[str, ...]
    output: bool = True


@dataclass(frozen=True)
class Lookup:
    """A left join: the row of `rule_set`'s output whose `on` column equals input `match`."""

    name: str
    rule_set: str
    match: str
    on: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Order:
    """One term of ORDER BY; PostgreSQL's default NULL placement unless stated."""

    column: str
    descending: bool = False
    nulls_first: bool | None = None

    @property
    def nulls_come_first(self) -> bool:
        return self.descending if self.nulls_first is None else self.nulls_first


@dataclass(frozen=True)
class Collapse:
    """Keep one row per value of `by`: the first by `prefer` (row_number() = 1)."""

    by: str
    prefer: tuple[Order, ...]


@dataclass(frozen=True)
class RuleSet:
    name: str
    source: tuple[str, str]  # (schema, table) of the raw export
    source_columns: tuple[str, ...]
    key: str
    steps: tuple[Derive | Lookup, ...]
    drop_when_null: tuple[str, ...] = ()
    collapse: Collapse | None = None

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """(name, PostgreSQL type) of every output column, in table order."""
        return tuple((s.name, s.sql_type) for s in self.steps if isinstance(s, Derive) and s.output)

    @property
    def depends_on(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.rule_set for s in self.steps if isinstance(s, Lookup)))


TIMESTAMP = "timestamp without time zone"

USERS = RuleSet(
    name="users",
    source=("raw", "users"),
    source_columns=("id", "email", "full_name", "department", "status", "updated_at"),
    key="user_id",
    steps=(
        Derive("user_id", "bigint", f.to_bigint, ("raw.id",)),
        Derive("email", "text", f.normalize_email, ("raw.email",)),
        Derive("full_name", "text", f.trimmed, ("raw.full_name",)),
        Derive("department", "text", f.map_department, ("raw.department",)),
        Derive("is_active", "boolean", f.is_active, ("raw.status",)),
        Derive("updated_at", TIMESTAMP, f.to_timestamp, ("raw.updated_at",)),
    ),
    # accounts without an email (service accounts, half-created rows) are not people
    drop_when_null=("email",),
    collapse=Collapse(
        by="email",
        prefer=(
            Order("is_active", descending=True),
            Order("updated_at", descending=True, nulls_first=False),
            Order("user_id"),
        ),
    ),
)

APPLICATIONS = RuleSet(
    name="applications",
    source=("raw", "applications"),
    source_columns=("id", "name", "owner_email", "department", "created_at"),
    key="application_id",
    steps=(
        Derive("application_id", "bigint", f.to_bigint, ("raw.id",)),
        Derive("application_name", "text", f.trimmed, ("raw.name",)),
        Derive("owner_email", "text", f.normalize_email, ("raw.owner_email",)),
        Lookup("owner", rule_set="users", match="owner_email", on="email", fields=("user_id", "is_active")),
        Derive("owner_user_id", "bigint", lambda user_id: user_id, ("owner.user_id",)),
        Derive("owner_status", "text", f.owner_status, ("owner.user_id", "owner.is_active")),
        Derive("department", "text", f.map_department, ("raw.department",)),
        Derive("created_at", TIMESTAMP, f.to_timestamp, ("raw.created_at",)),
    ),
)

RULE_SETS: dict[str, RuleSet] = {rule_set.name: rule_set for rule_set in (USERS, APPLICATIONS)}


def dependents(name: str, rule_sets: dict[str, RuleSet] = RULE_SETS) -> tuple[str, ...]:
    """The rule sets that read `name`'s output, directly or through others."""
    found: list[str] = []
    grew = True
    while grew:
        grew = False
        for rule_set in rule_sets.values():
            if rule_set.name not in found and any(d == name or d in found for d in rule_set.depends_on):
                found.append(rule_set.name)
                grew = True
    return tuple(found)
