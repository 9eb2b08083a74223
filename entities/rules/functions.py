"""The cleaning rules, one small function each, with the exact semantics of the dbt macros
and models of inventory_transforms (see its README, "Semantics").

PostgreSQL's one-argument btrim() strips only U+0020, hence `strip(" ")` throughout.
"""

from __future__ import annotations

from datetime import datetime

# Key = lower(btrim(department)); mirrors macros/map_department.sql exactly.
DEPARTMENTS: dict[str, str] = {
    "engineering": "Engineering",
    "eng": "Engineering",
    "eng.": "Engineering",
    "engr": "Engineering",
    "r&d": "Engineering",
    "r & d": "Engineering",
    "research & development": "Engineering",
    "finance": "Finance",
    "fin": "Finance",
    "fin.": "Finance",
    "fin & accounting": "Finance",
    "finance & accounting": "Finance",
    "accounting": "Finance",
    "human resources": "Human Resources",
    "hr": "Human Resources",
    "h.r.": "Human Resources",
    "people": "Human Resources",
    "people ops": "Human Resources",
    "sales": "Sales",
    "sls": "Sales",
    "business development": "Sales",
    "marketing": "Marketing",
    "mktg": "Marketing",
    "mkt": "Marketing",
    "operations": "Operations",
    "ops": "Operations",
    "legal": "Legal",
    "legal & compliance": "Legal",
}
UNASSIGNED = "Unassigned"
ACTIVE_STATUSES = frozenset({"active", "enabled"})


def normalize_email(value: str | None) -> str | None:
    """nullif(lower(btrim(x)), '')"""
    return (value or "").strip(" ").lower() or None


def trimmed(value: str | None) -> str | None:
    """btrim(x): '' stays ''."""
    return None if value is None else value.strip(" ")


def to_bigint(value: str | None) -> int | None:
    """cast(btrim(x) as bigint)"""
    return None if value is None else int(value.strip(" "))


def to_timestamp(value: str | None) -> datetime | None:
    """cast(nullif(btrim(x), '') as timestamp), naive."""
    text = (value or "").strip(" ")
    return datetime.fromisoformat(text) if text else None


def map_department(value: str | None) -> str:
    """map_department(x): anything unknown, NULL or blank is 'Unassigned'."""
    return DEPARTMENTS.get((value or "").strip(" ").lower(), UNASSIGNED)


def is_active(status: str | None) -> bool:
    """coalesce(lower(btrim(status)) in ('active', 'enabled'), false)"""
    return (status or "").strip(" ").lower() in ACTIVE_STATUSES


def owner_status(owner_user_id: int | None, owner_is_active: bool | None) -> str:
    """'unknown' without a resolved owner, else 'active' or 'departed'."""
    if owner_user_id is None:
        return "unknown"
    return "active" if owner_is_active else "departed"
