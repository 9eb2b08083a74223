"""Browser: create a two-step job on the page, run it, watch both steps finish on the run page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from runs.models import Job, Run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BUILD = "dbt build --select +fct_users --exclude fct_applications+"


def test_create_a_two_step_job_run_it_and_watch_both_steps_finish(login, operator, seeded_warehouse, queue_cluster):
    page = login(operator)
    page.get_by_test_id("main-nav").get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_test_id("new-job").click()
    page.get_by_label("Name").fill("users nightly")
    page.get_by_label("Project").select_option("inventory_transforms")
    page.get_by_label("Steps").fill(f"dbt seed\n{BUILD}")
    page.get_by_label("Cron").fill("0 3 * * *")
    page.get_by_role("button", name="Create job").click(no_wait_after=True)
    page.wait_for_url(re.compile(r"/jobs/\d+/$"), timeout=90_000)  # the first check of a selector may parse
    expect(page.get_by_test_id("job-definition")).to_contain_text(BUILD)

    page.get_by_test_id("run-now").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    steps = page.get_by_test_id("step-row")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("dbt seed")
    expect(steps.nth(1)).to_contain_text(BUILD)
    expect(page.get_by_test_id("run-state")).to_have_text("Success", timeout=120_000)
    for step in (steps.nth(0), steps.nth(1)):
        expect(step.get_by_test_id("step-state")).to_have_text("Success")
        expect(step.get_by_test_id("step-exit-code")).to_have_text("0")
    # Each step's log link lands on its own section of the log.
    for index in (1, 2):
        expect(page.locator(f"#run-log #log-step-{index}")).to_have_count(1)
    expect(page.get_by_test_id("nodes-table")).to_contain_text("fct_users")
    expect(page.get_by_test_id("run-job")).to_have_text("users nightly")

    run = Run.objects.get()
    assert run.job == Job.objects.get(name="users nightly") and run.triggered_by == operator
    assert list(run.steps.values_list("name", "state")) == [
        ("dbt seed", "success"),
        (BUILD, "success"),
    ]
