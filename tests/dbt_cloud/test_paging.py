"""The run list's total_count as Airflow's dbt Cloud provider pages by it (DbtCloudHook._paginate):
it reads total_count from the first page and asks for further offsets while it holds fewer runs
than that. A total above what exists would keep it asking for ever."""

from __future__ import annotations

import pytest

from runs import pagination
from tests.dbt_cloud.test_dbt_cloud_api import V2, client_for, make_run


@pytest.fixture
def as_viewer(viewer, dbt_projects_dir):
    return client_for(viewer, "Bearer")


def provider_walk(client, limit: int) -> list[int]:
    """The provider's loop: total_count of the first page, then offsets until it has as many
    runs (at most 100 requests here, where the provider would go on for ever)."""
    first = client.get(f"{V2}/runs/", {"limit": limit}).json()
    total = first["extra"]["pagination"]["total_count"]
    seen = [r["id"] for r in first["data"]]
    for _ in range(100):
        if len(seen) >= total:
            return seen
        body = client.get(f"{V2}/runs/", {"limit": limit, "offset": len(seen)}).json()
        seen += [r["id"] for r in body["data"]]
    pytest.fail(f"still paging after 100 requests: {len(seen)} runs seen, total_count {total}")


@pytest.mark.django_db
def test_a_planner_estimate_above_the_runs_never_keeps_the_provider_paging(as_viewer, monkeypatch):
    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 5)
    monkeypatch.setattr(pagination, "row_estimate", lambda queryset: 1_000_000)  # stale statistics
    runs = [make_run().pk for _ in range(12)]
    assert provider_walk(as_viewer, limit=5) == runs[::-1]  # each once, newest first as by default
    first = as_viewer.get(f"{V2}/runs/", {"limit": 5}).json()["extra"]["pagination"]
    assert first == {"count": 5, "total_count": 12, "total_count_is_estimate": False}


@pytest.mark.django_db
def test_a_short_page_says_the_exact_total(as_viewer, monkeypatch):
    monkeypatch.setattr(pagination, "EXACT_COUNT_LIMIT", 5)
    monkeypatch.setattr(pagination, "row_estimate", lambda queryset: 1_000_000)
    for _ in range(12):
        make_run()
    last = as_viewer.get(f"{V2}/runs/", {"limit": 5, "offset": 10}).json()["extra"]["pagination"]
    assert last == {"count": 2, "total_count": 12, "total_count_is_estimate": False}
