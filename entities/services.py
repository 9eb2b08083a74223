"""Entity workflows shared by pages, API, admin and the refresh run kind.

Mode changes span two databases: the metadata DB (EntityType, ModeChange, the request, audit
rows) and the warehouse (the serving view). The guarantee:

1. Inside one Django transaction the entity row is locked (SELECT ... FOR UPDATE: mode changes
   of one entity are serialized, and a refresh re-applying the view waits for them).
2. A warehouse transaction runs the view DDL, then every metadata write happens (any failure,
   including a database constraint, rolls both back: nothing changed).
3. The warehouse commits, then the metadata DB commits. If that last commit fails (lost
   connection, deferred constraint), the view is compensated: re-applied from the mode the
   metadata DB still holds. The metadata DB is the source of truth; `manage.py
   sync_serving_views` re-applies every entity's view from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from enum import StrEnum
from typing import Any

import psycopg
from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

from accounts.models import Capability
from accounts.permissions import can, require
from audit.services import record
from entities import parity_gate, router
from entities.models import (
    EntityType,
    Mode,
    ModeChange,
    ModeChangeKind,
    ModeChangeRequest,
    RequestStatus,
    mode_label,
)
from kernel.errors import ErrorCode, RequestError

logger = logging.getLogger(__name__)

MAX_TEXT = 2000


class Verb(StrEnum):
    """What a person does with a mode change request (`act_on_request`)."""

    APPROVE = "approve"
    REJECT = "reject"
    WITHDRAW = "withdraw"


# --- mode changes --------------------------------------------------------------------------


def _text(field: str, value: Any, *, required: bool) -> str:
    text = value.strip() if isinstance(value, str) else ("" if value is None else None)
    if text is None:
        raise RequestError(f"{field} must be text", field=field)
    if required and not text:
        raise RequestError(f"a {field} is required", field=field)
    if len(text) > MAX_TEXT:
        raise RequestError(f"{field} is longer than {MAX_TEXT} characters", field=field)
    return text


def _canary_percent(mode: str, value: Any) -> int | None:
    if mode != Mode.CANARY:
        if value not in (None, ""):
            raise RequestError("canary_percent is only for mode canary", field="canary_percent")
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 100:
        raise RequestError("canary needs canary_percent, a whole number from 1 to 99", field="canary_percent")
    return value


def request_mode_change(
    entity: EntityType, *, mode: Any, canary_percent: Any, reason: Any, actor: Any, source: str
) -> ModeChangeRequest:
    require(actor, Capability.REQUEST_MODE_CHANGE)
    if mode not in Mode.values:
        raise RequestError(f"mode must be one of {', '.join(Mode.values)}", field="mode")
    percent = _canary_percent(mode, canary_percent)
    reason = _text("reason", reason, required=True)
    with transaction.atomic():
        entity = EntityType.objects.select_for_update().get(pk=entity.pk)
        if mode == entity.mode and percent == entity.canary_percent:
            raise RequestError(f"{entity.name} is already on {entity.mode_label}", field="mode")
        request = ModeChangeRequest.objects.create(
            entity=entity,
            from_mode=entity.mode,
            from_canary_percent=entity.canary_percent,
            from_mode_version=entity.mode_version,
            mode=mode,
            canary_percent=percent,
            reason=reason,
            requested_by=actor,
        )
        record(
            actor,
            "entity.mode_request.create",
            request,
            after={"entity": entity.name, "from": request.from_label, "to": request.to_label},
            reason=reason,
            source=source,
        )
    return request


def _locked_request(request_id: int) -> tuple[EntityType, ModeChangeRequest]:
    """Lock the entity, then the request (always in that order: no deadlocks)."""
    entity_id = ModeChangeRequest.objects.filter(pk=request_id).values_list("entity_id", flat=True).first()
    if entity_id is None:
        raise ModeChangeRequest.DoesNotExist(f"no mode change request #{request_id}")
    entity = EntityType.objects.select_for_update().get(pk=entity_id)
    request = ModeChangeRequest.objects.select_for_update().select_related("requested_by").get(pk=request_id)
    request.entity = entity
    return entity, request


def _check_pending(request: ModeChangeRequest) -> None:
    if request.status == RequestStatus.WITHDRAWN:
        raise RequestError(
            f"Request #{request.pk} was already withdrawn by {request.requested_by.get_username()}.",
            code=ErrorCode.ALREADY_DECIDED,
        )
    if not request.is_pending:
        raise RequestError(
            f"Request #{request.pk} was already {request.status} by {request.decided_by.get_username()}.",
            code=ErrorCode.ALREADY_DECIDED,
        )


def _check_decidable(request: ModeChangeRequest, actor: Any, verb: Verb) -> None:
    if request.requested_by_id == actor.pk:
        raise RequestError(
            f"You cannot {verb} your own request: a second person must decide it.", code=ErrorCode.SELF_APPROVAL
        )
    _check_pending(request)


def approve_request(
    request_id: int, *, actor: Any, comment: Any = "", override_reason: Any = "", source: str
) -> ModeChangeRequest:
    require(actor, Capability.APPROVE_MODE_CHANGE)
    comment = _text("comment", comment, required=False)
    override_reason = _text("override_reason", override_reason, required=False)
    with _mode_change_transaction() as applied:
        entity, request = _locked_request(request_id)
        _check_decidable(request, actor, Verb.APPROVE)
        if request.is_stale:
            now = (
                f"it is now on {entity.mode_label}"
                if entity.mode_label != request.from_label
                else f"its mode has changed since (it is back on {entity.mode_label})"
            )
            raise RequestError(
                f"Request #{request.pk} is stale: it was made when {entity.name} was on {request.from_label}, "
                f"but {now}. Make a new request.",
                code=ErrorCode.STALE_REQUEST,
            )
        latest = entity.latest_parity()
        refusal = parity_gate.refusal(entity, request, latest)
        if refusal is not None:
            if not override_reason:
                raise refusal
            if not can(actor, Capability.ADMINISTER):
                raise RequestError(
                    "Only an admin may override the parity gate.",
                    field="override_reason",
                    code=ErrorCode.PERMISSION_DENIED,
                )
        elif override_reason:
            override_reason = ""  # the gate passed: nothing was overridden
        request.parity_report = latest
        request.parity_override_reason = override_reason
        request.decide(RequestStatus.APPROVED, actor, comment)
        record(
            actor,
            "entity.mode_request.approve",
            request,
            after={
                "entity": entity.name,
                "to": request.to_label,
                "parity_report": latest.pk if latest else None,
                "parity_percent": latest.percent_display if latest else None,
                "parity_override_reason": override_reason or None,
            },
            reason=comment,
            source=source,
        )
        _apply_mode(
            entity,
            request.mode,
            request.canary_percent,
            kind=ModeChangeKind.APPROVAL,
            actor=actor,
            reason=request.reason,
            request=request,
            source=source,
            applied=applied,
        )
    return request


def reject_request(request_id: int, *, actor: Any, comment: Any, source: str) -> ModeChangeRequest:
    require(actor, Capability.APPROVE_MODE_CHANGE)
    comment = _text("comment", comment, required=True)
    return _close_request(
        request_id, Verb.REJECT, actor, comment, source, lambda r: _check_decidable(r, actor, Verb.REJECT)
    )


def withdraw_request(request_id: int, *, actor: Any, comment: Any = "", source: str) -> ModeChangeRequest:
    """The requester takes back their own pending request (approvers reject others' instead)."""
    require(actor, Capability.REQUEST_MODE_CHANGE)
    comment = _text("comment", comment, required=False)

    def check(request: ModeChangeRequest) -> None:
        if request.requested_by_id != actor.pk:
            raise RequestError(
                f"Only its requester, {request.requested_by.get_username()}, can withdraw request #{request.pk}; "
                "an approver rejects it instead.",
                code=ErrorCode.NOT_REQUESTER,
            )
        _check_pending(request)

    return _close_request(request_id, Verb.WITHDRAW, actor, comment, source, check)


def _close_request(
    request_id: int, verb: Verb, actor: Any, comment: str, source: str, check: Callable[[ModeChangeRequest], None]
) -> ModeChangeRequest:
    """Reject or withdraw under the locks, after `check`, without touching the mode."""
    with transaction.atomic():
        entity, request = _locked_request(request_id)
        check(request)
        request.decide(RequestStatus.REJECTED if verb == Verb.REJECT else RequestStatus.WITHDRAWN, actor, comment)
        record(
            actor,
            f"entity.mode_request.{verb}",
            request,
            after={"entity": entity.name, "to": request.to_label},
            reason=comment,
            source=source,
        )
    return request


def act_on_request(
    verb: Verb, request_id: int, *, actor: Any, comment: Any = "", override_reason: Any = "", source: str
) -> ModeChangeRequest:
    """One door for pages and API: approve, reject or withdraw a request (any other verb is
    a ValueError, never a withdrawal)."""
    match Verb(verb):
        case Verb.APPROVE:
            return approve_request(
                request_id, actor=actor, comment=comment, override_reason=override_reason, source=source
            )
        case Verb.REJECT:
            return reject_request(request_id, actor=actor, comment=comment, source=source)
        case Verb.WITHDRAW:
            return withdraw_request(request_id, actor=actor, comment=comment, source=source)


def rollback(entity: EntityType, *, actor: Any, reason: Any, source: str) -> ModeChange:
    """Break-glass: back to rules at once, no approval; approvers are emailed from the queue
    (a slow or hung mail server never holds the request)."""
    require(actor, Capability.REQUEST_MODE_CHANGE)
    reason = _text("reason", reason, required=True)
    with _mode_change_transaction() as applied:
        entity = EntityType.objects.select_for_update().get(pk=entity.pk)
        if entity.mode == Mode.RULES:
            raise RequestError(f"{entity.name} is already on rules.", code=ErrorCode.ALREADY_IN_MODE)
        change = _apply_mode(
            entity,
            Mode.RULES,
            None,
            kind=ModeChangeKind.ROLLBACK,
            actor=actor,
            reason=reason,
            source=source,
            applied=applied,
        )
        transaction.on_commit(
            lambda: async_task(
                "entities.notifications.email_rollback", change.pk, task_name=f"rollback-mail-{change.pk}", group="mail"
            ),
            robust=True,
        )
    return change


@contextmanager
def _mode_change_transaction() -> Iterator[list[str]]:
    applied: list[str] = []  # entity names whose view DDL the warehouse committed
    try:
        with transaction.atomic():
            yield applied
    except BaseException:
        for name in applied:
            logger.error("metadata commit failed after the view of %s was re-pointed; compensating", name)
            try:
                sync_serving_view(name)
            except Exception:  # the original error matters more; sync_serving_views repairs later
                logger.exception("compensation failed: run `manage.py sync_serving_views`")
        raise


def _apply_mode(
    entity: EntityType,
    mode: str,
    canary_percent: int | None,
    *,
    kind: str,
    actor: Any,
    reason: str,
    source: str,
    applied: list[str],
    request: ModeChangeRequest | None = None,
) -> ModeChange:
    """Re-point the view and record the change; `entity` must be locked by the caller."""
    before = {"mode": entity.mode, "canary_percent": entity.canary_percent}
    try:
        with warehouse() as conn:
            view_sql = router.apply(conn, entity.serving_view_spec.at(mode, canary_percent))
            change = ModeChange.objects.create(
                entity=entity,
                kind=kind,
                from_mode=entity.mode,
                from_canary_percent=entity.canary_percent,
                to_mode=mode,
                to_canary_percent=canary_percent,
                actor=actor,
                request=request,
                reason=reason,
                view_sql=view_sql,
            )
            entity.mode = mode
            entity.canary_percent = canary_percent
            entity.mode_changed_at = change.created_at
            entity.mode_version += 1
            entity.save(update_fields=["mode", "canary_percent", "mode_changed_at", "mode_version"])
            record(
                actor,
                "entity.rollback" if kind == ModeChangeKind.ROLLBACK else "entity.mode.apply",
                entity,
                before=before,
                after={"mode": mode, "canary_percent": canary_percent, "request": request.pk if request else None},
                reason=reason,
                source=source,
            )
    except router.RouterError as error:
        raise RequestError(
            f"Cannot switch {entity.name} to {mode_label(mode, canary_percent)}: {error}", code=ErrorCode.CONFLICT
        ) from error
    applied.append(entity.name)
    return change


def warehouse() -> AbstractContextManager[psycopg.Connection]:
    """A warehouse transaction that gives up quickly: WAREHOUSE_CONNECT_TIMEOUT,
    WAREHOUSE_STATEMENT_TIMEOUT_MS and WAREHOUSE_LOCK_TIMEOUT_MS."""
    timeouts = router.Timeouts(
        settings.WAREHOUSE_CONNECT_TIMEOUT, settings.WAREHOUSE_STATEMENT_TIMEOUT_MS, settings.WAREHOUSE_LOCK_TIMEOUT_MS
    )
    return router.warehouse_transaction(settings.WAREHOUSE_CONNINFO, timeouts)


def sync_serving_view(name: str) -> str:
    """Re-apply the mode the metadata DB holds to the entity's serving view."""
    with transaction.atomic():
        entity = EntityType.objects.select_for_update().get(name=name)
        with warehouse() as conn:
            return router.apply(conn, entity.serving_view_spec)


def serving_view_definition(entity: EntityType) -> str | None:
    """The view's SQL as the warehouse holds it (None when it does not exist yet); a
    psycopg.Error when the warehouse cannot be reached in time."""
    with warehouse() as conn:
        return router.current_definition(conn, entity.serving_relation)
