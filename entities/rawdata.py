"""Synthetic directory exports for raw.users and raw.applications.

Produces the same dirty shapes as the inventory_transforms demo seeds (emails in any
case and padding, department names and codes in many spellings, blank and unknown
departments, statuses in several spellings, duplicate accounts for one person,
applications owned by people who left or by no one in the directory) at any size,
deterministically for a given seed, and loads them with COPY (each row stamped `_loaded_at`
with the load's time by the database, as a loader would).

Django-free: the management command `generate_raw_data` only supplies the connection.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

import psycopg
from psycopg import sql

RAW_SCHEMA = "raw"
USER_COLUMNS = ("id", "email", "full_name", "department", "status", "updated_at")
APPLICATION_COLUMNS = ("id", "name", "owner_email", "department", "created_at")
# When the loader wrote each row: what the dbt project's source freshness reads. Not part of
# the export (the rules engine never reads it); the database stamps it on insert.
LOADED_AT_COLUMN = "_loaded_at"
LOADED_AT_TYPE = "timestamp with time zone"

# Shares of generated rows. Duplicate and service-account rows are exact counts
# (rounded); the others are probabilities per row.
DUPLICATE_SHARE = 0.03  # extra accounts of an existing person
SERVICE_ACCOUNT_SHARE = 0.005  # accounts with a blank email (dropped by staging)
INACTIVE_SHARE = 0.10  # status spelled as one of INACTIVE_STATUSES
BLANK_STATUS_SHARE = 0.005  # status left blank (also not active)
DUPLICATE_TIE_SHARE = 0.2  # duplicates carrying the same updated_at as the person's first account
BLANK_DEPARTMENT_SHARE = 0.03
UNKNOWN_DEPARTMENT_SHARE = 0.04
UNKNOWN_OWNER_SHARE = 0.06  # application owner email not in the directory
BLANK_OWNER_SHARE = 0.02  # application without an owner email

# Spellings as they read after lower(btrim(...)); the generator varies case and padding.
# Must agree with macros/map_department.sql in dbt_projects/inventory_transforms.
DEPARTMENT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "Engineering": (
        "engineering",
        "eng",
        "eng.",
        "engr",
        "r&d",
        "r & d",
        "research & development",
    ),
    "Finance": ("finance", "fin", "fin.", "fin & accounting", "finance & accounting", "accounting"),
    "Human Resources": ("human resources", "hr", "h.r.", "people", "people ops"),
    "Sales": ("sales", "sls", "business development"),
    "Marketing": ("marketing", "mktg", "mkt"),
    "Operations": ("operations", "ops"),
    "Legal": ("legal", "legal & compliance"),
}
UNKNOWN_DEPARTMENTS = ("facilities", "tbd", "n/a", "-", "misc")
ACTIVE_STATUSES = ("active", "enabled")
INACTIVE_STATUSES = ("inactive", "disabled", "deactivated", "terminated", "suspended")

FIRST_NAMES = (
    "Aisha", "Ben", "Carla", "Dmitri", "Elena", "Farid", "Maria", "Hiro", "Ines", "Jonas",
    "Kemi", "Tom", "Mei", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Stefan", "Tara",
    "Umar", "Vera", "Li", "Xavier", "Yara", "Zoe", "Andre", "Bianca", "Chen", "Diego",
    "Siobhan", "Felix", "Gita", "Hugo", "Ivy", "Jamal", "Kira", "Luca", "Mona", "Sam",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Becker", "Moreau", "Novak", "OBrien", "Patel", "Quinn", "Rossi",
    "Schmidt", "Tanaka", "Wei", "Nguyen", "Okafor", "Lindqvist", "Mensah", "Horvat", "Silva",
    "Kim", "Murphy", "Yilmaz",
)  # fmt: skip
APPLICATION_WORDS = (
    "Payroll", "Expense", "Build", "Vendor", "Asset", "Billing", "Invoice", "Lead", "Campaign",
    "Quota", "Badge", "Fleet", "Survey", "Partner", "Compliance", "Travel", "Benefits",
    "Learning", "Contract", "Data", "Feature", "Status", "Forecast", "Ticket", "Access",
)  # fmt: skip
APPLICATION_KINDS = (
    "Portal", "Tracker", "Engine", "Hub", "Manager", "Catalog", "Planner", "Desk", "Service",
    "Console", "Sandbox", "Server",
)  # fmt: skip

_DEPARTMENT_CHOICES = tuple(spelling for spellings in DEPARTMENT_SPELLINGS.values() for spelling in spellings)
_EPOCH_START = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp())
_EPOCH_SPAN = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp()) - _EPOCH_START

_LOADED_AT_DEFINITION = sql.SQL("{} timestamptz not null default now()").format(sql.Identifier(LOADED_AT_COLUMN))

UserRow: TypeAlias = tuple[str, str | None, str, str | None, str | None, str]
ApplicationRow: TypeAlias = tuple[str, str, str | None, str | None, str]


@dataclass(frozen=True)
class RawDataLoad:
    users: int
    people: int
    applications: int
    seed: int
    seconds: float


class RawDataError(Exception):
    """The raw tables cannot be replaced (for example, a foreign object depends on them)."""


def people_count(users: int) -> int:
    """Distinct people among `users` generated rows (the rest are duplicates or service accounts)."""
    duplicates, service_accounts = _special_row_counts(users)
    return users - duplicates - service_accounts


def generate_users(count: int, seed: int = 0) -> Iterator[UserRow]:
    """Yield `count` raw.users rows; ids are 1..count."""
    rng = random.Random(f"users:{seed}")  # noqa: S311 - reproducible test data, not secrets
    duplicates, service_accounts = _special_row_counts(count)
    special = rng.sample(range(1, count), duplicates + service_accounts) if count > 1 else []
    duplicate_rows = set(special[:duplicates])
    service_rows = set(special[duplicates:])
    people = 0
    for index in range(count):
        row_id = str(index + 1)
        if index in service_rows:
            yield (row_id, None, f"svc-build-{index}", _department(rng), "active", _timestamp(rng))
            continue
        if index in duplicate_rows and people:
            person = rng.randrange(people)
            tie = rng.random() < DUPLICATE_TIE_SHARE
            updated_at = _format(_person_epoch(person)) if tie else _timestamp(rng)
        else:
            person = people
            people += 1
            updated_at = _format(_person_epoch(person))
        yield (
            row_id,
            _dirty_email(rng, _person_email(person)),
            _pad(rng, _person_name(person), 0.1),
            _department(rng),
            _status(rng),
            updated_at,
        )


def generate_applications(count: int, people: int, seed: int = 0) -> Iterator[ApplicationRow]:
    """Yield `count` raw.applications rows owned by people 0..people-1; ids are 1..count."""
    rng = random.Random(f"applications:{seed}")  # noqa: S311 - reproducible test data
    for index in range(count):
        draw = rng.random()
        if draw < BLANK_OWNER_SHARE or not people:
            owner: str | None = rng.choice((None, "", "  "))
        elif draw < BLANK_OWNER_SHARE + UNKNOWN_OWNER_SHARE:
            owner = _dirty_email(rng, f"contractor{rng.randrange(10 * count + 1)}@partner.example")
        else:
            owner = _dirty_email(rng, _person_email(rng.randrange(people)))
        name = f"{rng.choice(APPLICATION_WORDS)} {rng.choice(APPLICATION_KINDS)} {index + 1}"
        yield (str(index + 1), _pad(rng, name, 0.25), owner, _department(rng), _timestamp(rng))


def load_raw_data(conn: psycopg.Connection, *, users: int, applications: int, seed: int = 0) -> RawDataLoad:
    """Replace raw.users and raw.applications with generated rows, in one transaction.

    Tables that already have the expected columns are truncated rather than dropped, so
    views built on them (staging.*) survive; otherwise they are (re)created.
    """
    started = time.perf_counter()
    people = people_count(users)
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(RAW_SCHEMA)))
        _prepare_table(cursor, "users", USER_COLUMNS)
        _prepare_table(cursor, "applications", APPLICATION_COLUMNS)
        _copy_rows(cursor, "users", USER_COLUMNS, generate_users(users, seed))
        _copy_rows(
            cursor,
            "applications",
            APPLICATION_COLUMNS,
            generate_applications(applications, people, seed),
        )
        for table in ("users", "applications"):
            cursor.execute(sql.SQL("analyze {}").format(sql.Identifier(RAW_SCHEMA, table)))
    return RawDataLoad(
        users=users,
        people=people,
        applications=applications,
        seed=seed,
        seconds=time.perf_counter() - started,
    )


def _prepare_table(cursor: psycopg.Cursor, table: str, columns: tuple[str, ...]) -> None:
    cursor.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = %s and table_name = %s order by ordinal_position",
        (RAW_SCHEMA, table),
    )
    existing = cursor.fetchall()
    relation = sql.Identifier(RAW_SCHEMA, table)
    exported = [(column, "text") for column in columns]
    if existing in (exported, [*exported, (LOADED_AT_COLUMN, LOADED_AT_TYPE)]):
        cursor.execute(sql.SQL("truncate table {}").format(relation))
        if existing == exported:  # a table from before the loaded-at stamp: add it, keep the views
            cursor.execute(sql.SQL("alter table {} add column {}").format(relation, _LOADED_AT_DEFINITION))
        return
    if existing:
        try:
            with cursor.connection.transaction():
                cursor.execute(sql.SQL("drop table {}").format(relation))
        except psycopg.errors.DependentObjectsStillExist as error:
            raise RawDataError(
                f"{RAW_SCHEMA}.{table} has unexpected columns and other objects depend on it;"
                f" drop them or fix the table first ({error.diag.message_detail})"
            ) from error
    cursor.execute(
        sql.SQL("create table {} ({}, {})").format(
            relation,
            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns),
            _LOADED_AT_DEFINITION,
        )
    )


def _copy_rows(
    cursor: psycopg.Cursor,
    table: str,
    columns: tuple[str, ...],
    rows: Iterator[tuple[str | None, ...]],
) -> None:
    statement = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier(RAW_SCHEMA, table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
    )
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _special_row_counts(users: int) -> tuple[int, int]:
    if users < 2:
        return 0, 0
    duplicates = round(users * DUPLICATE_SHARE)
    service_accounts = round(users * SERVICE_ACCOUNT_SHARE)
    return duplicates, service_accounts


def _person_name(person: int) -> str:
    first = FIRST_NAMES[person % len(FIRST_NAMES)]
    last = LAST_NAMES[(person // len(FIRST_NAMES)) % len(LAST_NAMES)]
    return f"{first} {last}"


def _person_email(person: int) -> str:
    first = FIRST_NAMES[person % len(FIRST_NAMES)].lower()
    last = LAST_NAMES[(person // len(FIRST_NAMES)) % len(LAST_NAMES)].lower()
    return f"{first}.{last}{person}@example.com"


def _person_epoch(person: int) -> int:
    # A fixed, well-spread instant per person, so a duplicate account can tie with it.
    return _EPOCH_START + (person * 2_654_435_761) % _EPOCH_SPAN


def _timestamp(rng: random.Random) -> str:
    return _format(_EPOCH_START + rng.randrange(_EPOCH_SPAN))


def _format(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _dirty_email(rng: random.Random, email: str) -> str:
    draw = rng.random()
    if draw < 0.10:
        local, _, domain = email.partition("@")
        email = f"{'.'.join(part.capitalize() for part in local.split('.'))}@{domain.capitalize()}"
    elif draw < 0.18:
        email = email.upper()
    return _pad(rng, email, 0.15)


def _pad(rng: random.Random, text: str, share: float) -> str:
    draw = rng.random()
    if draw >= share:
        return text
    if draw < share / 3:
        return f" {text}"
    if draw < 2 * share / 3:
        return f"{text} "
    return f"  {text}  "


def _department(rng: random.Random) -> str | None:
    draw = rng.random()
    if draw < BLANK_DEPARTMENT_SHARE:
        return rng.choice((None, "", " "))
    if draw < BLANK_DEPARTMENT_SHARE + UNKNOWN_DEPARTMENT_SHARE:
        spelling = rng.choice(UNKNOWN_DEPARTMENTS)
    else:
        spelling = rng.choice(_DEPARTMENT_CHOICES)
    return _pad(rng, _vary_case(rng, spelling), 0.1)


def _status(rng: random.Random) -> str | None:
    draw = rng.random()
    if draw < BLANK_STATUS_SHARE:
        return rng.choice((None, ""))
    if draw < BLANK_STATUS_SHARE + INACTIVE_SHARE:
        spelling = rng.choice(INACTIVE_STATUSES)
    else:
        spelling = "active" if draw < 0.9 else "enabled"
    return _pad(rng, _vary_case(rng, spelling), 0.05)


def _vary_case(rng: random.Random, text: str) -> str:
    draw = rng.random()
    if draw < 0.5:
        return text.capitalize() if len(text) > 4 else text.upper()
    if draw < 0.75:
        return text
    return text.upper()
