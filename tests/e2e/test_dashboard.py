"""Browser: the dashboard's numbers, then a failing test's history from it, against the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from lineage.models import Edge, Node
from runs.models import NodeResult, Run
from tests.e2e.conftest import screenshot
from tests.lineage.conftest import PROJECT, manifest_path, parsed_target  # noqa: F401 - session fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MODEL = "model.inventory_transforms.fct_users"


@pytest.fixture
def history(db, manifest_path):  # noqa: F811 - the imported fixture
    """Five builds of fct_users an hour apart: the model's time grows, one of its tests
    passes and fails in turn (four flips: flaky)."""
    from lineage.services import ingest_manifest

    snapshot = ingest_manifest(PROJECT, manifest_path, actor="tests")
    children = Edge.objects.filter(snapshot=snapshot, parent=MODEL).values("child")
    test = Node.objects.filter(snapshot=snapshot, unique_id__in=children, resource_type="test").order_by("name")[0]
    for number, status in enumerate(["pass", "fail", "pass", "fail", "pass"]):
        queued = timezone.now() - timedelta(hours=5 - number)
        run = Run.objects.create(
            project=PROJECT, command="build", timeout_seconds=60, source="schedule", queued_at=queued,
            started_at=queued + timedelta(seconds=number + 1), finished_at=queued + timedelta(seconds=60),
            state="success" if status == "pass" else "failed",
        )  # fmt: skip
        NodeResult.objects.create(
            run=run, command="build", unique_id=MODEL, name="fct_users", resource_type="model", status="success",
            execution_time=1.25 * (number + 1),
        )  # fmt: skip
        NodeResult.objects.create(
            run=run, command="build", unique_id=test.unique_id, name=test.name, resource_type="test", status=status,
            failures=0 if status == "pass" else 3, message="" if status == "pass" else "Got 3 results",
        )  # fmt: skip
    return test


def test_dashboard_numbers_and_a_failing_tests_history_match_the_database(login, viewer, page, history):
    login(viewer)
    page.get_by_test_id("main-nav").get_by_role("link", name="Dashboard", exact=True).click()
    runs = Run.objects.filter(queued_at__gte=timezone.now() - timedelta(hours=24))
    succeeded, ended = runs.filter(state="success").count(), runs.count()
    expect(page.get_by_test_id("overall-percent")).to_have_text(f"{100 * succeeded / ended:.2f}%")
    expect(page.get_by_test_id("overall-ended")).to_have_text(str(ended))
    failing = page.get_by_test_id("failing-tests")
    failures = NodeResult.objects.filter(unique_id=history.unique_id, status="fail").count()
    expect(failing.get_by_test_id("failures")).to_have_text([str(failures)])
    mean = sum(NodeResult.objects.filter(unique_id=MODEL).values_list("execution_time", flat=True)) / 5
    expect(page.get_by_test_id("slowest-models").get_by_test_id("mean")).to_have_text([f"{mean:.2f}"])
    screenshot(page, "dashboard")

    failing.get_by_role("link", name=history.name).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(history.name)
    results = list(NodeResult.objects.filter(unique_id=history.unique_id).order_by("run_id"))
    cells = page.get_by_test_id("history-cell")
    expect(cells).to_have_count(len(results))
    for cell, result in zip(cells.all(), results, strict=True):
        assert cell.get_attribute("data-status") == result.status
        assert cell.get_attribute("title").startswith(f"run {result.run_id} · {result.status} · {result.failures}")
    expect(page.get_by_test_id("flaky")).to_be_visible()
    expect(page.get_by_test_id("flips")).to_have_text("4")

    page.goto(f"/lineage/{PROJECT}/nodes/{MODEL}/")
    times = NodeResult.objects.filter(unique_id=MODEL).order_by("-run_id").values_list("execution_time", flat=True)
    expect(page.get_by_test_id("duration-table").get_by_test_id("duration")).to_have_text([f"{t:.2f}" for t in times])
    expect(page.get_by_test_id("line-chart").locator("circle")).to_have_count(5)
