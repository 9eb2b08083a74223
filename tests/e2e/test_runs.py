"""Browser: trigger a run from the form, watch it succeed live, cancel a long one."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from runs.models import Run
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_trigger_from_the_form_and_watch_it_succeed(login, operator, seeded_warehouse, queue_cluster):
    page = login(operator)
    page.goto("/runs/new/")
    page.get_by_label("Project").select_option("inventory_transforms")
    page.get_by_label("Command").select_option("build")
    page.get_by_role("button", name="Queue run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    expect(page.get_by_test_id("run-state")).to_have_text("Success", timeout=90_000)
    expect(page.get_by_test_id("nodes-table")).to_contain_text("fct_users")
    expect(page.get_by_test_id("run-log")).to_contain_text("Done. PASS=")
    expect(page.get_by_test_id("progress-text")).to_contain_text(re.compile(r"(\d+) of \1 done"))
    expect(page.get_by_test_id("rerun")).to_be_visible()
    screenshot(page, "run")
    run = Run.objects.get()
    assert run.triggered_by == operator and run.command == "build"


def test_form_errors_are_shown_and_nothing_is_queued(login, operator, dbt_projects_dir):
    page = login(operator)
    page.goto("/runs/new/")
    page.get_by_label("Project").select_option("inventory_transforms")
    page.get_by_label("Select").fill("no_such_model")
    page.get_by_role("button", name="Queue run").click()
    expect(page.get_by_role("alert")).to_contain_text("'no_such_model' matches no node")
    assert not Run.objects.exists()


def test_cancel_a_long_run_from_its_page(login, operator, seeded_warehouse, queue_cluster):
    page = login(operator)
    page.goto("/runs/new/")
    page.get_by_label("Project").select_option("sleepy")
    page.get_by_label("Command").select_option("run")
    page.get_by_label("Select").fill("fast+")
    page.get_by_role("button", name="Queue run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    expect(page.get_by_test_id("run-log")).to_contain_text("START sql table model", timeout=60_000)
    expect(page.get_by_test_id("run-state")).to_have_text("Running")
    # The node table follows live, also for a node that starts after another has finished.
    slow_row = page.get_by_test_id("nodes-table").locator("tr", has_text="slow_after_fast")
    expect(slow_row).to_contain_text("running")
    expect(page.get_by_test_id("progress-text")).to_have_text("1 of 2 done")
    page.get_by_test_id("cancel").click()
    expect(page.get_by_test_id("run-state")).to_have_text("Cancelled", timeout=30_000)
    expect(page.get_by_test_id("run-reason")).to_contain_text("cancelled by otto_operator")
