"""Browser: create a job of three steps on the page, run it on the queue cluster, watch each
step finish on the run page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from runs.models import Job, Run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SEED = "dbt seed --fail-fast"
BUILD = "dbt build --select +fct_users --exclude fct_applications+"
# inventory_transforms' selectors.yml: fct_users and its parents, tests only on those
BY_SELECTOR = "dbt build --selector users --indirect-selection cautious -x --warn-error"


def test_create_a_job_of_three_steps_run_it_and_watch_each_finish(login, operator, seeded_warehouse, queue_cluster):
    page = login(operator)
    page.get_by_test_id("main-nav").get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_test_id("new-job").click()
    page.get_by_label("Name").fill("users nightly")
    page.get_by_label("Project").select_option("inventory_transforms")
    page.get_by_label("Steps").fill(f"{SEED}\n{BUILD}\n{BY_SELECTOR}")
    page.get_by_label("Cron").fill("0 3 * * *")
    page.get_by_role("button", name="Create job").click(no_wait_after=True)
    page.wait_for_url(re.compile(r"/jobs/\d+/$"), timeout=90_000)  # the first check of a selector may parse
    expect(page.get_by_test_id("job-definition")).to_contain_text(BUILD)
    expect(page.get_by_test_id("job-definition")).to_contain_text(BY_SELECTOR)

    page.get_by_test_id("run-now").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    steps = page.get_by_test_id("step-row")
    expect(steps).to_have_count(3)
    expect(steps.nth(0)).to_contain_text(SEED)
    expect(steps.nth(1)).to_contain_text(BUILD)
    expect(steps.nth(2)).to_contain_text(BY_SELECTOR)
    expect(page.get_by_test_id("run-state")).to_have_text("Success", timeout=120_000)
    for step in (steps.nth(0), steps.nth(1), steps.nth(2)):
        expect(step.get_by_test_id("step-state")).to_have_text("Success")
        expect(step.get_by_test_id("step-exit-code")).to_have_text("0")
    # Each step's log link lands on its own section of the log.
    for index in (1, 2, 3):
        expect(page.locator(f"#run-log #log-step-{index}")).to_have_count(1)
    expect(page.get_by_test_id("nodes-table")).to_contain_text("fct_users")
    expect(page.get_by_test_id("run-job")).to_have_text("users nightly")

    run = Run.objects.get()
    assert run.job == Job.objects.get(name="users nightly") and run.triggered_by == operator
    assert list(run.steps.values_list("name", "state")) == [
        (SEED, "success"),
        (BUILD, "success"),
        (BY_SELECTOR, "success"),
    ]
    # the third step's dbt got the step's flags, and built what the selector names
    third = run.steps.get(index=3)
    log = "\n".join(chunk.text for chunk in run.log_chunks.order_by("first_line")).split("\n")
    assert any(
        "--selector users --indirect-selection cautious --fail-fast --warn-error" in line
        for line in log[third.log_first_line : third.log_end_line]
    )
    assert set(run.node_results.filter(step=3, resource_type="model").values_list("name", flat=True)) == {
        "stg_users",
        "fct_users",
    }
