"""The entity-refresh run kind: `trigger_refresh` queues it (one at a time per entity),
`execute_refresh` runs it in a queue worker (rules engine, dbt or both, by mode, then the
parity report and the serving view)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import Capability
from accounts.permissions import require
from dbtlib.errors import DbtInputError
from dbtlib.selectors import check_selector
from entities import parity, parity_gate, router
from entities.models import RUNS_DBT, RUNS_RULES, WRITES_PARITY, EntityType, ParityReport
from entities.queries import REFRESH_KIND
from entities.rules import engine
from entities.services import sync_serving_view
from kernel.errors import ErrorCode, RequestError
from runs.kinds import RunContext, RunFailed
from runs.models import Run
from runs.services import trigger_run


def trigger_refresh(entity: EntityType, *, actor: Any, source: str, rerun_of: Run | None = None) -> Run:
    require(actor, Capability.OPERATE)
    with transaction.atomic():
        # The entity row lock makes "no active refresh, so create one" one step for two clicks at once.
        entity = EntityType.objects.select_for_update().get(pk=entity.pk)
        active = Run.objects.active().filter(kind=REFRESH_KIND, params__entity=entity.name).first()
        if active is not None:
            raise RequestError(
                f"A refresh of {entity.name} is already {active.state} (run #{active.pk}).",
                code=ErrorCode.ALREADY_ACTIVE,
            )
        return trigger_run(
            kind=REFRESH_KIND,
            project=entity.dbt_project,
            params={"entity": entity.name},
            actor=actor,
            source=source,
            rerun_of=rerun_of,
        )


def rerun_refresh(run: Run, *, actor: Any, source: str) -> Run:
    """A re-run is a new refresh of the same entity: one at a time, as trigger_refresh keeps it."""
    name = (run.params or {}).get("entity")
    entity = EntityType.objects.filter(name=name).first()
    if entity is None:
        raise RequestError(f"There is no entity type {name!r} to refresh any more.", code=ErrorCode.CONFLICT)
    return trigger_refresh(entity, actor=actor, source=source, rerun_of=run)


def execute_refresh(ctx: RunContext) -> None:
    """The entity-refresh run kind: by mode, the rules engine, dbt, or both, then parity."""
    name = (ctx.run.params or {}).get("entity")
    entity = EntityType.objects.filter(name=name).first()
    if entity is None:
        raise RunFailed(f"no entity type {name!r}")
    mode = entity.mode
    ctx.log(f"refreshing {entity.name} in mode {entity.mode_label}")
    # Taken before either engine reads them: a change during the run makes the report stale.
    parity_inputs = parity_gate.fingerprint(entity) if mode in WRITES_PARITY else None
    conninfo = settings.WAREHOUSE_CONNINFO
    if mode in RUNS_RULES:
        try:
            guard = engine.Guard(
                ctx.application_name, ctx.raise_if_interrupted, ctx.waiting, settings.WAREHOUSE_LOCK_TIMEOUT_MS
            )
            engine.run(conninfo, entity.name, log=ctx.log, guard=guard)
        except engine.RulesEngineError as error:
            raise RunFailed(f"rules engine: {error}") from error
    if mode in RUNS_DBT:
        try:
            select = check_selector("dbt_selector", entity.dbt_selector)
        except DbtInputError as error:
            raise RunFailed(f"the dbt selector of {entity.name} is refused: {error.message}") from error
        exit_code = ctx.dbt("build", select=select, exclude=entity.dbt_exclude)
        if exit_code != 0:
            raise RunFailed(f"{entity.dbt_command} exited with {exit_code}")
    if mode in WRITES_PARITY:
        try:
            report = write_parity_report(
                entity, run=ctx.run, parity_inputs=parity_inputs, application_name=ctx.application_name
            )
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


def write_parity_report(
    entity: EntityType,
    *,
    run: Run | None = None,
    parity_inputs: dict[str, Any] | None = None,
    application_name: str = "",
) -> ParityReport:
    """Compare the two sides now; `parity_inputs` is the fingerprint of what they were built
    from (taken now when not given)."""
    if parity_inputs is None:
        parity_inputs = parity_gate.fingerprint(entity)
    result = parity.compute(
        settings.WAREHOUSE_CONNINFO,
        rules_relation=entity.rules_relation,
        dbt_relation=entity.dbt_relation,
        key=entity.key_column,
        columns=[name for name, _ in router.columns_of(entity.name)],
        application_name=application_name or "portal-parity",
    )
    return ParityReport.objects.create(entity=entity, run=run, inputs=parity_inputs, **asdict(result))
