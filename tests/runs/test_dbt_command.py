"""`manage.py dbt` goes through the trigger path: a run row with source `command`, the
project's write lock, the audit row; dbt's output is printed as the run goes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from runs.models import Run, RunState

pytestmark = pytest.mark.django_db(transaction=True)


def test_manage_py_dbt_leaves_a_run_and_an_audit_row_and_prints_dbt_output(seeded_warehouse):
    out = StringIO()
    # tests that read fct_applications would run too (dbt's eager indirect selection): exclude them
    argv = ["build", "--select", "stg_users", "fct_users", "--exclude", "fct_applications+"]
    call_command("dbt", "inventory_transforms", *argv, stdout=out)
    run = Run.objects.get()
    assert run.source == "command" and run.command == "build" and run.select == "stg_users fct_users"
    assert run.exclude == "fct_applications+"
    assert run.state == RunState.SUCCESS and run.exit_code == 0
    assert run.node_results.filter(unique_id="model.inventory_transforms.fct_users", status="success").exists()
    printed = out.getvalue()
    assert f"run #{run.pk}" in printed and "$ dbt build" in printed and "run ended: success" in printed
    event = AuditEvent.objects.get(action="run.trigger", target_id=str(run.pk))
    assert event.source == "command" and "manage.py dbt" in event.actor_username


def test_manage_py_dbt_refuses_what_the_pages_refuse_and_creates_nothing(seeded_warehouse):
    with pytest.raises(CommandError, match="select"):
        call_command("dbt", "inventory_transforms", "build", "--select", "no_such_model", stdout=StringIO())
    with pytest.raises(CommandError, match="not an allowed dbt command"):
        call_command("dbt", "inventory_transforms", "run-operation", "drop_everything", stdout=StringIO())
    assert not Run.objects.exists() and not AuditEvent.objects.filter(action="run.trigger").exists()


def test_manage_py_dbt_exits_non_zero_when_the_run_fails(seeded_warehouse):
    with pytest.raises(CommandError) as failed:
        call_command("dbt", "sleepy", "run", "--select", "broken", stdout=StringIO())
    run = Run.objects.get()
    assert run.state == RunState.FAILED and failed.value.returncode == 1
    assert f"run #{run.pk} failed" in str(failed.value)
