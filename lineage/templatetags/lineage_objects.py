"""Exposures, metrics, semantic models, saved queries and model contracts in templates: what
the manifest holds as objects, turned into text the template escapes (none of it is marked
safe), and URLs kept only when they are http or https."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django import template

register = template.Library()

LINK_SCHEMES = {"http", "https"}
_C0_OR_SPACE = "".join(map(chr, range(0x21)))


@register.filter
def http_url(value: Any) -> str:
    """The URL when it is an http(s) one with a host (as the browser would read it), else ""."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        parts = urlsplit(value.strip(_C0_OR_SPACE))  # tabs and newlines inside go too, as browsers drop them
    except ValueError:
        return ""
    if parts.scheme.lower() not in LINK_SCHEMES or not parts.netloc:
        return ""
    return urlunsplit(parts)


@register.filter
def where_sql(value: Any) -> list[str]:
    """A where filter ({"where_filters": [{"where_sql_template": …}]}) as its SQL templates."""
    filters = value.get("where_filters") if isinstance(value, dict) else None
    return [str(f.get("where_sql_template", "")) for f in filters or () if isinstance(f, dict)]


@register.filter
def names(value: Any) -> str:
    """A list of inputs (metrics, measures: strings or {"name": …}) as "a, b"."""
    if not isinstance(value, list):
        return ""
    return ", ".join(str(v.get("name", "")) if isinstance(v, dict) else str(v) for v in value)


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@register.filter
def constraint(value: Any) -> str:
    """One dbt constraint as text: `primary_key (id)`, `check: amount >= 0`,
    `foreign_key (customer_id) → ref('customers') (id)`."""
    if not isinstance(value, dict):
        return ""
    text = str(value.get("type") or "")
    if value.get("name"):
        text += f" {value['name']}"
    columns = value.get("columns")
    if isinstance(columns, list) and columns:
        text += f" ({', '.join(str(c) for c in columns)})"
    if value.get("expression"):
        text += f": {value['expression']}"
    if value.get("to"):
        to_columns = value.get("to_columns")
        text += f" → {value['to']}"
        if isinstance(to_columns, list) and to_columns:
            text += f" ({', '.join(str(c) for c in to_columns)})"
    return text
