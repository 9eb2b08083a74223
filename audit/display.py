"""Audit rows as people read them: the target by its name, before/after as the keys that
changed (old → new), were added or removed. Generic over models (django.apps), so audit
still imports no other app."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError

from audit.models import AuditEvent
from kernel.security import MASKED


@dataclass(frozen=True)
class Change:
    """One key of a before/after pair; nested keys are dotted (`options.DBT_X`)."""

    key: str
    kind: str  # "changed", "added" or "removed"
    old: str = ""
    new: str = ""


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """A dict's leaves by dotted key; anything else (a list, a number) is one leaf."""
    if not isinstance(value, dict) or (prefix and not value):
        return {prefix or "value": value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        flat.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def changes(before: Any, after: Any) -> list[Change]:
    """What an event changed, in the order the keys were recorded: a created object's keys
    are all added, a deleted one's all removed."""
    old = _flat(before) if before is not None else {}
    new = _flat(after) if after is not None else {}
    found = []
    for key in [*old, *(key for key in new if key not in old)]:
        if key not in new:
            found.append(Change(key, "removed", old=_shown(old[key])))
        elif key not in old:
            found.append(Change(key, "added", new=_shown(new[key])))
        elif old[key] != new[key]:
            found.append(Change(key, "changed", old=_shown(old[key]), new=_shown(new[key])))
    return found


def _existing_labels(target_type: str, ids: set[str]) -> dict[str, str]:
    """str() of the objects of one model label (`entities.entitytype`) that still exist, by
    id; nothing for a type that is no model or ids that are no primary key of it."""
    try:
        model = apps.get_model(target_type)
    except (LookupError, ValueError):
        return {}
    pks = []
    for target_id in ids:
        try:
            pks.append(model._meta.pk.to_python(target_id))
        except ValidationError:
            continue
    return {str(obj.pk): str(obj) for obj in model._default_manager.filter(pk__in=pks)}


def for_page(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """The events, each with `target_name` (the name recorded with it, else, for rows written
    before names were recorded or with a (type, id) target, the object's str() while it
    exists; one query per model type) and `changes`."""
    events = list(events)
    unnamed: dict[str, set[str]] = {}
    for event in events:
        if event.target_type and not event.target_label:
            unnamed.setdefault(event.target_type, set()).add(event.target_id)
    resolved = {
        (target_type, target_id): label
        for target_type, ids in unnamed.items()
        for target_id, label in _existing_labels(target_type, ids).items()
    }
    for event in events:
        event.target_name = event.target_label or resolved.get((event.target_type, event.target_id), "")  # type: ignore[attr-defined]
        event.changes = changes(event.before, event.after)  # type: ignore[attr-defined]
    return events


def mask_env_values(value: Any) -> Any:
    """A before/after with the values of every `env_vars` object replaced by MASKED, their
    names kept: rows written before the audit kept env_vars by name only still hold values,
    and the chain keeps every row as written, so who reads below the operator role reads
    them through this (the page, its exports, the API)."""
    if isinstance(value, dict):
        return {
            key: dict.fromkeys(item, MASKED) if key == "env_vars" and isinstance(item, dict) else mask_env_values(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_env_values(item) for item in value]
    return value
