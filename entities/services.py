"""Entity workflows shared by pages, API, admin and the refresh run kind.

Mode changes span two databases: the metadata DB (EntityType, ModeChange, the request, audit
rows) and the warehouse (the serving view). The guarantee (see README, "Modes"):

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
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q

from accounts.models import Capability
from accounts.permissions import can, require
from audit.services import record
from entities import parity, router
from entities.models import (
    RUNS_DBT,
    RUNS_RULES,
    WRITES_PARITY,
    EntityType,
    Mode,
    ModeChange,
    ModeChangeKind,
    ModeChangeRequest,
    ParityReport,
    RequestStatus,
    mode_label,
)
from entities.queries import REFRESH_KIND
from entities.rules import engine
from runs.dbt.selectors import check_selector
from runs.kinds import RunContext, RunFailed
from runs.models import Run, TriggerSource
from runs.services import InvalidRunRequest, trigger_run
from transformation_portal.errors import RequestError

logger = logging.getLogger(__name__)

MAX_TEXT = 2000


class InvalidEntityRequest(Exception):  # noqa: N818 - reads as the domain error
    """Bad input: 400 {"detail", "field"} on the API, a form error on a page. Nothing changed."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class ModeConflict(Exception):  # noqa: N818 - reads as the domain error
    """The entity's state refuses the action (stale request, parity gate, ...): 409."""

    def __init__(self, message: str, *, parity_report: ParityReport | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parity_report = parity_report


# --- mode changes --------------------------------------------------------------------------


def _text(field: str, value: Any, *, required: bool) -> str:
    text = value.strip() if isinstance(value, str) else ("" if value is None else None)
    if text is None:
        raise InvalidEntityRequest(field, f"{field} must be text")
    if required and not text:
        raise InvalidEntityRequest(field, f"a {field} is required")
    if len(text) > MAX_TEXT:
        raise InvalidEntityRequest(field, f"{field} is longer than {MAX_TEXT} characters")
    return text


def _canary_percent(mode: str, value: Any) -> int | None:
    if mode != Mode.CANARY:
        if value not in (None, ""):
            raise InvalidEntityRequest("canary_percent", "canary_percent is only for mode canary")
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 100:
        raise InvalidEntityRequest("canary_percent", "canary needs canary_percent, a whole number from 1 to 99")
    return value


def request_mode_change(
    entity: EntityType, *, mode: Any, canary_percent: Any, reason: Any, actor: Any, source: str
) -> ModeChangeRequest:
    require(actor, Capability.REQUEST_MODE_CHANGE)
    if mode not in Mode.values:
        raise InvalidEntityRequest("mode", f"mode must be one of {', '.join(Mode.values)}")
    percent = _canary_percent(mode, canary_percent)
    reason = _text("reason", reason, required=True)
    with transaction.atomic():
        entity = EntityType.objects.select_for_update().get(pk=entity.pk)
        if mode == entity.mode and percent == entity.canary_percent:
            raise InvalidEntityRequest("mode", f"{entity.name} is already on {entity.mode_label}")
        request = ModeChangeRequest.objects.create(
            entity=entity,
            from_mode=entity.mode,
            from_canary_percent=entity.canary_percent,
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
        raise ModeConflict(f"Request #{request.pk} was already withdrawn by {request.requested_by.get_username()}.")
    if not request.is_pending:
        raise ModeConflict(
            f"Request #{request.pk} was already {request.status} by {request.decided_by.get_username()}."
        )


def _check_decidable(request: ModeChangeRequest, actor: Any, verb: str) -> None:
    if request.requested_by_id == actor.pk:
        raise PermissionDenied(f"You cannot {verb} your own request: a second person must decide it.")
    _check_pending(request)


def approve_request(
    request_id: int, *, actor: Any, comment: Any = "", override_reason: Any = "", source: str
) -> ModeChangeRequest:
    require(actor, Capability.APPROVE_MODE_CHANGE)
    comment = _text("comment", comment, required=False)
    override_reason = _text("override_reason", override_reason, required=False)
    with _mode_change_transaction() as applied:
        entity, request = _locked_request(request_id)
        _check_decidable(request, actor, "approve")
        if request.is_stale:
            raise ModeConflict(
                f"Request #{request.pk} is stale: it was made when {entity.name} was on {request.from_label}, "
                f"but it is now on {entity.mode_label}. Make a new request."
            )
        latest = entity.latest_parity()
        if not entity.gate_allows(request.mode, latest):
            if not override_reason:
                found = (
                    f"the latest parity report #{latest.pk} is {latest.percent_display}%"
                    if latest
                    else "there is no parity report yet (refresh in shadow mode)"
                )
                raise ModeConflict(
                    f"Parity gate: {found}, below the threshold of {entity.parity_threshold}% "
                    f"for {request.to_label}. An admin may override with a reason.",
                    parity_report=latest,
                )
            if not can(actor, Capability.ADMINISTER):
                raise PermissionDenied("Only an admin may override the parity gate.")
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
    return _close_request(request_id, "reject", actor, comment, source, lambda r: _check_decidable(r, actor, "reject"))


def withdraw_request(request_id: int, *, actor: Any, comment: Any = "", source: str) -> ModeChangeRequest:
    """The requester takes back their own pending request (approvers reject others' instead)."""
    require(actor, Capability.REQUEST_MODE_CHANGE)
    comment = _text("comment", comment, required=False)

    def check(request: ModeChangeRequest) -> None:
        if request.requested_by_id != actor.pk:
            raise PermissionDenied(
                f"Only its requester, {request.requested_by.get_username()}, can withdraw request #{request.pk}; "
                "an approver rejects it instead."
            )
        _check_pending(request)

    return _close_request(request_id, "withdraw", actor, comment, source, check)


def _close_request(
    request_id: int, verb: str, actor: Any, comment: str, source: str, check: Callable[[ModeChangeRequest], None]
) -> ModeChangeRequest:
    """Reject or withdraw under the locks, after `check`, without touching the mode."""
    with transaction.atomic():
        entity, request = _locked_request(request_id)
        check(request)
        request.decide(RequestStatus.REJECTED if verb == "reject" else RequestStatus.WITHDRAWN, actor, comment)
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
    verb: str, request_id: int, *, actor: Any, comment: Any = "", override_reason: Any = "", source: str
) -> ModeChangeRequest:
    """One door for pages and API: "approve", "reject" or "withdraw" a request."""
    if verb == "approve":
        return approve_request(request_id, actor=actor, comment=comment, override_reason=override_reason, source=source)
    close = reject_request if verb == "reject" else withdraw_request
    return close(request_id, actor=actor, comment=comment, source=source)


def rollback(entity: EntityType, *, actor: Any, reason: Any, source: str) -> ModeChange:
    """Break-glass: back to rules at once, no approval; approvers are emailed."""
    require(actor, Capability.REQUEST_MODE_CHANGE)
    reason = _text("reason", reason, required=True)
    with _mode_change_transaction() as applied:
        entity = EntityType.objects.select_for_update().get(pk=entity.pk)
        if entity.mode == Mode.RULES:
            raise ModeConflict(f"{entity.name} is already on rules.")
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
        transaction.on_commit(lambda: _email_rollback(change), robust=True)
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
        with router.warehouse_transaction(settings.WAREHOUSE_CONNINFO) as warehouse:
            view_sql = router.apply(warehouse, entity.serving_view_spec.at(mode, canary_percent))
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
            entity.save(update_fields=["mode", "canary_percent", "mode_changed_at"])
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
        raise ModeConflict(f"Cannot switch {entity.name} to {mode_label(mode, canary_percent)}: {error}") from error
    applied.append(entity.name)
    return change


def sync_serving_view(name: str) -> str:
    """Re-apply the mode the metadata DB holds to the entity's serving view."""
    with transaction.atomic():
        entity = EntityType.objects.select_for_update().get(name=name)
        with router.warehouse_transaction(settings.WAREHOUSE_CONNINFO) as warehouse:
            return router.apply(warehouse, entity.serving_view_spec)


def serving_view_definition(entity: EntityType) -> str | None:
    """The view's SQL as the warehouse holds it (None when it does not exist yet)."""
    try:
        with router.warehouse_transaction(settings.WAREHOUSE_CONNINFO) as warehouse:
            return router.current_definition(warehouse, entity.serving_relation)
    except Exception:  # the page still renders when the warehouse is unreachable
        logger.exception("could not read the definition of %s", entity.serving_view)
        return None


def approver_emails() -> list[str]:
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    codename = Capability.APPROVE_MODE_CHANGE.value
    users = users.filter(
        Q(is_superuser=True)
        | Q(groups__permissions__codename=codename, groups__permissions__content_type__app_label="accounts")
        | Q(user_permissions__codename=codename, user_permissions__content_type__app_label="accounts")
    )
    return sorted(set(users.values_list("email", flat=True)))


def _email_rollback(change: ModeChange) -> None:
    entity = change.entity
    actor = change.actor.get_username() if change.actor else "someone"
    send_mail(
        subject=f"[Transformation Portal] {entity.name} rolled back to rules by {actor}",
        message=(
            f"{actor} rolled {entity.name} back from {change.from_label} to rules at "
            f"{change.created_at:%Y-%m-%d %H:%M:%S %Z} (break-glass, no approval needed).\n\n"
            f"Reason: {change.reason}\n\n"
            f"{settings.PORTAL_BASE_URL}/entities/{entity.name}/\n"
        ),
        from_email=None,
        recipient_list=approver_emails(),
    )


# --- refresh -------------------------------------------------------------------------------


def trigger_refresh(entity: EntityType, *, actor: Any, source: str) -> Run:
    require(actor, Capability.OPERATE)
    with transaction.atomic():
        # The entity row lock makes "no active refresh, so create one" one step for two clicks at once.
        entity = EntityType.objects.select_for_update().get(pk=entity.pk)
        active = Run.objects.active().filter(kind=REFRESH_KIND, params__entity=entity.name).first()
        if active is not None:
            raise ModeConflict(f"A refresh of {entity.name} is already {active.state} (run #{active.pk}).")
        try:
            return trigger_run(
                kind=REFRESH_KIND,
                project=entity.dbt_project,
                params={"entity": entity.name},
                actor=actor,
                source=TriggerSource.ENTITY,
                audit_source=source,
            )
        except InvalidRunRequest as error:
            raise InvalidEntityRequest(error.field, f"{entity.name} cannot be refreshed: {error.message}") from error


def execute_refresh(ctx: RunContext) -> None:
    """The entity-refresh run kind: by mode, the rules engine, dbt, or both, then parity."""
    name = (ctx.run.params or {}).get("entity")
    entity = EntityType.objects.filter(name=name).first()
    if entity is None:
        raise RunFailed(f"no entity type {name!r}")
    mode = entity.mode
    ctx.log(f"refreshing {entity.name} in mode {entity.mode_label}")
    conninfo = settings.WAREHOUSE_CONNINFO
    if mode in RUNS_RULES:
        try:
            engine.run(conninfo, entity.name, log=ctx.log)
        except engine.RulesEngineError as error:
            raise RunFailed(f"rules engine: {error}") from error
    if mode in RUNS_DBT:
        try:
            select = check_selector("dbt_selector", entity.dbt_selector)
        except RequestError as error:
            raise RunFailed(f"the dbt selector of {entity.name} is refused: {error.message}") from error
        exit_code = ctx.dbt("build", select=select, exclude=entity.dbt_exclude)
        if exit_code != 0:
            raise RunFailed(f"{entity.dbt_command} exited with {exit_code}")
    if mode in WRITES_PARITY:
        try:
            report = write_parity_report(entity, run=ctx.run)
        except parity.ParityError as error:
            raise RunFailed(f"parity: {error}") from error
        ctx.log(
            f"parity {report.percent_display}%: {report.matching_rows:,} of {report.compared_rows:,} rows identical, "
            f"{report.only_in_rules:,} only in rules, {report.only_in_dbt:,} only in dbt, "
            f"{report.mismatched_rows:,} differing (parity report #{report.pk})"
        )
    # The view reads the tables through late-bound functions, so it survives the rebuilds;
    # re-applying the mode the entity is on *now* creates it on the first refresh and never
    # undoes a rollback made while this run was going.
    try:
        sync_serving_view(entity.name)
    except router.RouterError as error:
        raise RunFailed(f"serving view not updated: {error}") from error
    ctx.log(f"{entity.serving_view} serves {EntityType.objects.get(pk=entity.pk).mode_label}")


def write_parity_report(entity: EntityType, *, run: Run | None = None) -> ParityReport:
    result = parity.compute(
        settings.WAREHOUSE_CONNINFO,
        rules_relation=entity.rules_relation,
        dbt_relation=entity.dbt_relation,
        key=entity.key_column,
        columns=[name for name, _ in router.columns_of(entity.name)],
    )
    return ParityReport.objects.create(
        entity=entity,
        run=run,
        rules_rows=result.rules_rows,
        dbt_rows=result.dbt_rows,
        matching_rows=result.matching_rows,
        only_in_rules=result.only_in_rules,
        only_in_dbt=result.only_in_dbt,
        mismatched_rows=result.mismatched_rows,
        column_differences=result.column_differences,
        sample_keys=result.sample_keys,
        seconds=result.seconds,
    )
