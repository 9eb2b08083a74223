from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, cast

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from audit.middleware import current_request_id
from audit.models import AuditEvent, Source

GENESIS_HASH = "0" * 64
# Serializes chain writers across processes; released when the writer's transaction ends.
_CHAIN_LOCK_KEY = 0x617564_6974  # "audit"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder)) if value is not None else None


def _canonical(event: AuditEvent) -> str:
    row = {
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
        "source": event.source,
        "request_id": event.request_id,
    }
    if event.target_label:  # rows recorded before targets were named hash as they always did
        row["target_label"] = event.target_label
    return json.dumps(
        row,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def compute_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + _canonical(event)).encode()).hexdigest()


def _label(target: models.Model) -> str:
    """The target's name as people know it (str()), cut to fit the column."""
    limit = cast(int, AuditEvent._meta.get_field("target_label").max_length)
    label = str(target)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def record(
    actor: Any,  # a user, a system label such as "scheduler", or None
    action: str,
    target: models.Model | tuple[str, str] | None = None,
    *,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    source: str = Source.WEB,
) -> AuditEvent:
    """Append one audit event. Call it inside the transaction of the change it describes,
    so the change and its audit row commit (or roll back) together."""
    target_label = ""
    if isinstance(target, models.Model):
        target_type, target_id, target_label = target._meta.label_lower, str(target.pk), _label(target)
    elif target is not None:
        target_type, target_id = target[0], str(target[1])
    else:
        target_type, target_id = "", ""
    is_user = getattr(actor, "is_authenticated", False)
    actor_username = actor.get_username() if is_user else (actor if isinstance(actor, str) else "")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            created_at=timezone.now(),
            actor=actor if is_user else None,
            actor_username=actor_username,
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label,
            before=_jsonable(before),
            after=_jsonable(after),
            reason=reason or "",
            source=str(source),
            request_id=current_request_id.get(),
            prev_hash=last or GENESIS_HASH,
        )
        event.hash = compute_hash(event.prev_hash, event)
        event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def verify_chain() -> ChainReport:
    """Walk the chain in id order; name the first row whose link or content is wrong."""
    prev = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        if event.prev_hash != prev:
            return ChainReport(checked, event.pk, "prev_hash does not match the previous row's hash")
        if compute_hash(prev, event) != event.hash:
            return ChainReport(checked, event.pk, "content does not match its hash (row edited)")
        prev = event.hash
        checked += 1
    return ChainReport(checked)


def changed_fields(
    before: dict[str, Any], after: dict[str, Any], *, ignore: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An update's audit diff from two snapshots: the keys of `after` whose value differs
    from `before` (a key `before` lacks counts as None), `ignore` left out, each side in key
    order. ({}, {}) when nothing changed: the caller then records no event."""
    changed = sorted(key for key in after if key not in ignore and before.get(key) != after[key])
    return {key: before.get(key) for key in changed}, {key: after[key] for key in changed}


def snapshot(instance: models.Model, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON-ready picture of a model instance for before/after; m2m as sorted labels."""
    data = model_to_dict(instance, exclude=exclude)
    for field in instance._meta.many_to_many:
        if field.name in data and field.name not in exclude:
            data[field.name] = sorted(str(obj) for obj in data[field.name])
    return _jsonable(data)
