"""The dashboard's numbers against runs and node results seeded with known timestamps."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from entities.models import EntityType, ParityReport
from operations.dashboard import refresh_snapshots
from runs.models import Environment, Job, NodeResult, Run

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def percentile(values: list[float], share: float) -> float:
    """PostgreSQL's percentile_cont: linear between the two nearest ranks."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def add_run(job, state, ago, wait, duration, project="sleepy", results=()) -> Run:
    queued = timezone.now() - ago
    started = queued + timedelta(seconds=wait)
    run = Run.objects.create(
        project=project, timeout_seconds=60, source="schedule", job=job, state=state, queued_at=queued,
        started_at=started, finished_at=started + timedelta(seconds=duration),
    )  # fmt: skip
    for uid, status, seconds in results:
        NodeResult.objects.create(
            run=run, command="build", unique_id=uid, name=uid.split(".")[-1], resource_type=uid.split(".")[0],
            status=status, execution_time=seconds,
        )  # fmt: skip
    return run


@pytest.fixture
def seeded(migrated_rows):
    env = Environment.objects.create(project="sleepy", name="prod", is_default=True)
    nightly = Job.objects.create(project="sleepy", name="nightly", environment=env, steps=["dbt build"])
    hourly = Job.objects.create(project="sleepy", name="hourly", environment=env, steps=["dbt build"])
    t1, t2, m1, m2 = "test.sleepy.t1", "test.sleepy.t2", "model.sleepy.m1", "model.sleepy.m2"
    runs = [
        add_run(nightly, "success", 10 * HOUR, 1, 60, results=[(m1, "success", 10.0), (t1, "pass", 0.1)]),
        add_run(nightly, "failed", 8 * HOUR, 3, 30, results=[(t1, "fail", 0.1), (t2, "fail", 0.1)]),
        add_run(nightly, "error", 6 * HOUR, 5, 20, results=[(t1, "error", 0.1), (m2, "success", 5.0)]),
        add_run(nightly, "success", 4 * HOUR, 2, 90, results=[(m1, "success", 20.0), (t1, "pass", 0.1)]),
        add_run(hourly, "success", 5 * HOUR, 4, 40),
        add_run(hourly, "success", 3 * HOUR, 1, 50),
        add_run(None, "cancelled", 2 * HOUR, 6, 10),
        add_run(None, "success", 1 * HOUR, 2, 30),
        add_run(hourly, "failed", 72 * HOUR, 1, 10, results=[(t2, "fail", 0.1)]),  # in 7 d, not in 24 h
    ]
    entity = EntityType.objects.get(name="users")  # a data migration's
    ParityReport.objects.create(
        entity=entity, rules_rows=100, dbt_rows=100, matching_rows=96, only_in_rules=0, only_in_dbt=0,
        mismatched_rows=4, seconds=0.1,
    )  # fmt: skip
    return runs


def shown(page: str, testid: str) -> list[str]:
    return re.findall(rf'data-testid="{testid}"[^>]*>([^<]*)<', page)


def test_the_last_24_hours_against_the_database(client, viewer, seeded):
    client.force_login(viewer)
    page = client.get("/dashboard/").content.decode()
    in_window = [r for r in seeded if r.queued_at >= timezone.now() - 24 * HOUR]
    counted = [r for r in in_window if r.state in ("success", "failed", "error", "timed_out")]
    succeeded = [r for r in counted if r.state == "success"]
    assert (len(succeeded), len(counted)) == (5, 7)
    assert shown(page, "overall-percent") == [f"{100 * len(succeeded) / len(counted):.2f}%"] == ["71.43%"]
    assert shown(page, "overall-succeeded") == ["5"] and shown(page, "overall-ended") == ["7"]
    assert shown(page, "job-percent") == ["50.00%", "100.00%", "100.00%"]  # worst first: nightly, hourly, others

    # nightly failed at run 2 and recovered at run 4.
    outage = (seeded[3].finished_at - seeded[1].finished_at).total_seconds()
    assert shown(page, "mttr-value") == [f"{outage:.0f} s"] and shown(page, "outages") == ["1"]

    waits = [(r.started_at - r.queued_at).total_seconds() for r in in_window]
    assert shown(page, "queue-p50") == [f"{percentile(waits, 0.5):.1f}"]
    assert shown(page, "queue-p95") == [f"{percentile(waits, 0.95):.1f}"]

    failing = page[page.index('data-testid="failing-tests"') :]
    assert re.findall(r">(t\d)</a></td><td>sleepy</td><td data-testid=\"failures\">(\d+)<", failing) == [
        ("t1", "2"),
        ("t2", "1"),
    ]
    slowest = page[page.index('data-testid="slowest-models"') :]
    assert re.findall(
        r">(m\d)</a> <span class=\"muted\">sleepy</span></td><td data-testid=\"mean\">([\d.]+)<", slowest
    ) == [
        ("m1", "15.00"),
        ("m2", "5.00"),
    ]
    entities = page[page.index('data-testid="entity-modes"') :]
    users = entities[entities.index(">users</a>") : entities.index("</tr>", entities.index(">users</a>"))]
    assert EntityType.objects.get(name="users").mode_label in users and "96.00%" in users
    assert 'data-testid="dashboard-slas"' in page and 'data-testid="dashboard-freshness"' in page
    assert page.count('data-testid="line-chart"') == 1 and page.count('data-testid="bar-chart"') == 1


def test_seven_days_take_in_the_older_outage(client, viewer, seeded):
    client.force_login(viewer)
    page = client.get("/dashboard/?window=7d").content.decode()
    assert shown(page, "overall-ended") == ["8"] and shown(page, "outages") == ["2"]
    older = (seeded[4].finished_at - seeded[8].finished_at).total_seconds()  # hourly: failed 3 days ago, then ok
    newer = (seeded[3].finished_at - seeded[1].finished_at).total_seconds()
    assert shown(page, "mttr-value") == [f"{(older + newer) / 2:.0f} s"]
    failing = page[page.index('data-testid="failing-tests"') :]
    assert re.findall(r'data-testid="failures">(\d+)<', failing) == ["2", "2"]


def test_the_page_reads_the_minutely_snapshot_and_makes_a_fixed_number_of_queries(client, viewer, seeded):
    client.force_login(viewer)
    with CaptureQueriesContext(connection) as computing:
        client.get("/dashboard/?window=30d")
    with CaptureQueriesContext(connection) as reading:
        before = client.get("/dashboard/?window=30d").content.decode()
    add_run(None, "failed", HOUR / 2, 1, 1)
    assert shown(client.get("/dashboard/?window=30d").content.decode(), "overall-ended") == shown(
        before, "overall-ended"
    )
    refresh_snapshots()  # the scheduler's minute
    after = client.get("/dashboard/?window=30d").content.decode()
    assert shown(after, "overall-ended") == ["9"] and shown(before, "overall-ended") == ["8"]
    for _ in range(3):
        add_run(None, "success", HOUR, 1, 1, results=[("model.sleepy.m3", "success", 1.0)])
    Run.objects.filter(job__isnull=False).update(queued_at=timezone.now() - HOUR)
    with CaptureQueriesContext(connection) as more:
        client.get("/dashboard/?window=7d")  # no snapshot of 7 d yet: computed
    assert len(more) == len(computing) and len(reading) < len(computing)
    assert Schedule.objects.get(name="operations-dashboard").func == "operations.dashboard.refresh_snapshots"


def test_an_unknown_window_is_the_default_and_the_page_needs_read(client, viewer, nobody):
    client.force_login(nobody)
    assert client.get("/dashboard/").status_code == 403
    client.force_login(viewer)
    page = client.get("/dashboard/?window=1y").content.decode()
    assert "last 24 hours" in page and "No run ended in this window." in page
    assert '<a href="/dashboard/">Dashboard</a>' in client.get("/runs/").content.decode()
