"""Pages and the entities API make a fixed number of queries, whatever the number of rows."""

from __future__ import annotations

import pytest

from entities.models import EntityType, ModeChangeRequest, ParityReport
from runs.jobs import create_job
from runs.models import Run

pytestmark = pytest.mark.django_db

# The most queries each page may make (session, user, permissions, then the page's own reads).
HOME_QUERIES = 10  # its project list reads the git projects too
APPROVALS_QUERIES = 8
JOBS_QUERIES = 9
ENTITIES_API_QUERIES = 8


def add_entities(first: int, count: int, requester) -> list[str]:
    """Entities `first`..`first+count-1`, each with two parity reports (the newest at 96%),
    two refresh runs (the newest running) and a pending request to shadow."""
    names = []
    for number in range(first, first + count):
        entity = EntityType.objects.create(
            name=f"thing_{number:02}",
            dbt_project="inventory_transforms",
            dbt_selector=f"+fct_thing_{number:02}",
            key_column="thing_id",
            serving_view=f"serving.thing_{number:02}",
        )
        for matching in (50, 96):
            ParityReport.objects.create(
                entity=entity, rules_rows=100, dbt_rows=100, matching_rows=matching, only_in_rules=0,
                only_in_dbt=0, mismatched_rows=100 - matching, seconds=0.1,
            )  # fmt: skip
        for state in ("success", "running"):
            Run.objects.create(
                project="inventory_transforms", kind="entity-refresh", params={"entity": entity.name},
                timeout_seconds=60, source="web", triggered_by=requester, state=state,
            )  # fmt: skip
        ModeChangeRequest.objects.create(
            entity=entity, from_mode="rules", mode="shadow", reason=f"try thing {number}", requested_by=requester
        )
        names.append(entity.name)
    return names


def add_jobs(first: int, count: int, operator) -> list[str]:
    """Jobs `first`..`first+count-1`, each on a cron trigger with a success and a newer failure."""
    names = []
    for number in range(first, first + count):
        job = create_job(
            actor=operator, source="web", project="sleepy", name=f"nightly_{number:02}",
            steps=["dbt run --select fast", "dbt ls"], cron="0 3 * * *", schedule_enabled=True,
        )  # fmt: skip
        for state in ("success", "failed"):
            Run.objects.create(project="sleepy", timeout_seconds=60, source="schedule", job=job, state=state)
        names.append(job.name)
    return names


def get_within(client, url: str, most: int, django_assert_max_num_queries) -> str:
    with django_assert_max_num_queries(most):
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("url", ["/", "/entities/"])
def test_entity_overview_pages_make_a_fixed_number_of_queries(
    client, operator, approver, url, django_assert_max_num_queries
):
    client.force_login(approver)
    names = add_entities(0, 2, operator)
    page = get_within(client, url, HOME_QUERIES, django_assert_max_num_queries)
    assert all(name in page for name in names)
    assert page.count("96.00%") == 2 and page.count("1 pending") == 2
    assert page.count("A refresh is running") == 2

    names += add_entities(2, 20, operator)
    page = get_within(client, url, HOME_QUERIES, django_assert_max_num_queries)
    assert all(name in page for name in names)
    assert page.count("96.00%") == 22 and page.count("1 pending") == 22


def test_approvals_queue_makes_a_fixed_number_of_queries(client, operator, approver, django_assert_max_num_queries):
    client.force_login(approver)
    add_entities(0, 2, operator)
    page = get_within(client, "/entities/approvals/", APPROVALS_QUERIES, django_assert_max_num_queries)
    assert page.count("try thing") == 2 and page.count(">96.00%<") == 2

    add_entities(2, 20, operator)
    page = get_within(client, "/entities/approvals/", APPROVALS_QUERIES, django_assert_max_num_queries)
    assert page.count("try thing") == 22 and page.count(">96.00%<") == 22
    assert "try thing 21" in page and 'data-testid="approve-form"' in page


def test_jobs_page_makes_a_fixed_number_of_queries(
    client, viewer, operator, dbt_projects_dir, django_assert_max_num_queries
):
    client.force_login(viewer)
    names = add_jobs(0, 3, operator)
    page = get_within(client, "/jobs/", JOBS_QUERIES, django_assert_max_num_queries)
    assert all(f">{name}</a>" in page for name in names) and page.count('class="badge state-failed"') == 3
    assert page.count("50% <span") == 3

    names += add_jobs(3, 27, operator)
    page = get_within(client, "/jobs/", JOBS_QUERIES, django_assert_max_num_queries)
    assert all(f">{name}</a>" in page for name in names) and page.count('class="badge state-failed"') == 30
    assert page.count("50% <span") == 30 and page.count("<code>dbt run --select fast</code>") == 30


def test_entities_api_list_makes_a_fixed_number_of_queries(client, operator, django_assert_max_num_queries):
    client.force_login(operator)
    add_entities(0, 2, operator)
    with django_assert_max_num_queries(ENTITIES_API_QUERIES):
        body = client.get("/api/v1/entities/").json()
    assert {"thing_00", "thing_01"} <= {entity["name"] for entity in body}

    add_entities(2, 20, operator)
    with django_assert_max_num_queries(ENTITIES_API_QUERIES):
        body = client.get("/api/v1/entities/").json()
    things = {entity["name"]: entity for entity in body if entity["name"].startswith("thing_")}
    assert len(things) == 22
    last = things["thing_21"]
    assert (last["latest_parity"]["parity_percent"], last["latest_parity"]["meets_threshold"]) == ("96.00", False)
    assert [r["reason"] for r in last["pending_requests"]] == ["try thing 21"]
    assert (last["last_refresh"]["state"], last["last_refresh"]["triggered_by"]) == ("running", "otto_operator")
