"""SLAs: a job that misses its deadline is alerted once and its recovery noticed once; an
over-long run misses a duration SLA; the checker is idempotent and its query count does not
grow with the number of SLAs; SLAs are defined through the API and the pages, audited, and
bad input is refused naming the field. Runs are rows with set states and times (what the
worker writes); the webhook's far end is a local HTTP server, mail Django's outbox."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule
from django_q.signing import SignedPackage

from audit.models import AuditEvent
from operations.models import Sla, SlaMiss
from operations.sla_checker import check_slas, notify
from operations.slas import create_sla, status_summary
from runs.jobs import create_job, trigger_job
from runs.models import NotificationDelivery, Run, RunState
from runs.notifications import create_target
from runs.worker import execute_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dbt_projects_dir")]


@pytest.fixture
def job(operator):
    return create_job(actor=operator, source="api", project="chain", name="nightly", steps=["dbt run"])


@pytest.fixture
def hook(webhook, operator):
    """A target of the chain project hearing failures and recoveries, by webhook and email."""
    received, url = webhook
    create_target(
        actor=operator, source="web", project="chain", webhook_url=url, emails="oncall@example.com", on_recovery=True
    )
    return received


@pytest.fixture
def checker(django_capture_on_commit_callbacks, queued):
    """One checker pass, then its queued notice tasks run as the worker would: the notices
    ("miss", "recovery") sent."""

    def check(now: datetime | None = None) -> list[str]:
        with django_capture_on_commit_callbacks(execute=True):
            check_slas(now)
        notices, broker = [], get_broker()
        while broker.queue_size():
            for _id, payload in broker.dequeue() or []:
                task = SignedPackage.loads(payload)
                if task["func"] == "operations.sla_checker.notify":  # not a run's own notifications
                    notify(*task["args"])
                    notices += [notice for _ids, notice in task["args"][0]]
        return notices

    return check


def run_of(job, state: str, *, started: datetime, finished: datetime | None, reason: str = "") -> Run:
    return Run.objects.create(
        project=job.project, timeout_seconds=3600, source="schedule", job=job, environment=job.environment,
        state=state, reason=reason, queued_at=started, started_at=started, finished_at=finished,
    )  # fmt: skip


def defined_days_ago(sla: Sla, days: int = 2) -> Sla:
    """As if the SLA had been defined days ago (only slots after its definition count)."""
    Sla.objects.filter(pk=sla.pk).update(updated_at=timezone.now() - timedelta(days=days))
    sla.refresh_from_db()
    return sla


def daytime_zone() -> str:
    """A time zone where it is now between 01:00 and 22:00, so a deadline ten minutes ago and
    a success now fall on the same local day whenever the test runs."""
    for name in ("Europe/Paris", "America/New_York", "Asia/Tokyo", "Pacific/Auckland"):
        if 1 <= timezone.now().astimezone(ZoneInfo(name)).hour < 22:
            return name
    raise AssertionError("some zone is in daytime")


def test_a_failed_job_misses_its_deadline_is_alerted_once_and_its_late_success_noticed_once(
    client, operator, job, hook, checker
):
    zone = daytime_zone()
    now = timezone.now()
    due = (now - timedelta(minutes=10)).astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0)
    failed = run_of(
        job, RunState.FAILED, started=due - timedelta(minutes=20), finished=due - timedelta(minutes=15),
        reason="1 node(s) failed: b",
    )  # fmt: skip
    sla = create_sla(
        actor=operator, source="api", name="nightly by", kind="deadline", job=job.pk, deadline=f"{due:%H:%M}",
        time_zone=zone,
    )  # fmt: skip
    defined_days_ago(sla)

    assert checker() == ["miss"]
    miss = SlaMiss.objects.get(sla=sla)
    assert miss.slot_at == due and miss.run_id == failed.pk and miss.alerted_at is not None
    assert f"by {due:%a %Y-%m-%d %H:%M} {zone}; its latest run #{failed.pk} was failed: 1 node(s) failed" in (
        miss.reason
    )
    assert [body["notice"] for body in hook.received] == ["sla.miss"]
    assert hook.received[0]["sla"] == "nightly by" and hook.received[0]["slot_at"] == due.isoformat()
    assert [m.subject for m in mail.outbox] == ["[portal] SLA nightly by missed"]
    assert [s.status for s in status_summary()] == ["missed"]
    client.force_login(operator)
    dashboard = client.get("/dashboard/").content.decode()
    assert 'data-status="missed"' in dashboard and "1 missed · 0 pending · 0 met" in dashboard

    assert checker() == []  # the same minute again: nothing recorded, nothing sent twice
    assert notify([([miss.pk], "miss")]) == 0  # a duplicate task claims nothing
    assert len(hook.received) == 1 and SlaMiss.objects.count() == 1

    green = run_of(job, RunState.SUCCESS, started=timezone.now() - timedelta(minutes=1), finished=timezone.now())
    assert checker() == ["recovery"]
    miss.refresh_from_db()
    assert miss.recovered_by_id == green.pk and miss.late_success_at == green.finished_at
    assert [body["notice"] for body in hook.received] == ["sla.miss", "sla.recovery"]
    assert hook.received[1]["late_success_at"] == green.finished_at.isoformat()
    assert mail.outbox[1].subject == "[portal] SLA nightly by recovered" and "late success" in mail.outbox[1].body
    assert checker() == []
    assert len(hook.received) == 2
    assert sorted(miss.deliveries.values_list("notice", "channel", "status", "run")) == [
        ("sla.miss", "email", "sent", None), ("sla.miss", "webhook", "sent", None),
        ("sla.recovery", "email", "sent", None), ("sla.recovery", "webhook", "sent", None),
    ]  # fmt: skip
    assert client.get("/runs/notifications/").status_code == 200  # its recent deliveries are the runs' only
    assert [s.status for s in status_summary()] == ["met"]
    sla.delete()
    assert not NotificationDelivery.objects.exists()  # an SLA's deliveries go with its misses


@pytest.mark.django_db(transaction=True)
def test_a_real_failing_dbt_job_misses_its_deadline_and_its_green_rerun_recovers_it(operator, job, hook, checker, gate):
    failed = trigger_job(job, actor=operator, source="api")
    execute_run(failed.pk)
    failed.refresh_from_db()
    assert failed.state == RunState.FAILED, failed.reason
    zone = daytime_zone()
    due = timezone.now().astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0)  # this minute: passed
    sla = create_sla(actor=operator, source="web", name="chain by now", kind="deadline", job=job.pk,
                     deadline=f"{due:%H:%M}", time_zone=zone)  # fmt: skip
    defined_days_ago(sla)
    assert checker() == ["miss"]
    assert checker() == []
    assert [body["notice"] for body in hook.received] == ["sla.miss"]

    gate.open()
    green = trigger_job(job, actor=operator, source="api")
    execute_run(green.pk)
    green.refresh_from_db()
    assert green.state == RunState.SUCCESS, green.reason
    assert checker() == ["recovery"]
    assert checker() == []
    assert [body["notice"] for body in hook.received] == ["sla.miss", "sla.recovery"]
    assert SlaMiss.objects.get(sla=sla).recovered_by_id == green.pk


def test_an_on_time_success_meets_the_deadline_and_a_day_not_due_is_not_checked(operator, job, hook, checker):
    zone = daytime_zone()
    local_now = timezone.now().astimezone(ZoneInfo(zone))
    due = (local_now - timedelta(minutes=10)).replace(second=0, microsecond=0)
    run_of(job, RunState.SUCCESS, started=due - timedelta(minutes=30), finished=due - timedelta(minutes=25))
    met = create_sla(actor=operator, source="api", name="met", kind="deadline", job=job.pk, deadline=f"{due:%H:%M}",
                     time_zone=zone)  # fmt: skip
    today = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][local_now.weekday()]
    not_today = create_sla(
        actor=operator, source="api", name="other days", kind="deadline", job=job.pk,
        deadline=f"{due:%H:%M}", time_zone=zone, weekdays=[d for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                                                         if d != today],
    )  # fmt: skip
    for sla in (met, not_today):
        defined_days_ago(sla, days=0)  # defined just before today's deadline: today's slot counts
        Sla.objects.filter(pk=sla.pk).update(updated_at=due - timedelta(hours=1))
    assert checker() == []
    assert not SlaMiss.objects.exists() and hook.received == []
    assert {s.sla.name: s.status for s in status_summary()} == {"met": "met", "other days": "met"}


def test_a_run_over_its_duration_sla_is_a_miss_while_running_and_the_next_quick_success_recovers_it(
    operator, job, hook, checker
):
    sla = defined_days_ago(
        create_sla(actor=operator, source="api", name="under 5 min", kind="duration", job=job.pk, max_minutes=5)
    )
    now = timezone.now()
    run_of(job, RunState.SUCCESS, started=now - timedelta(minutes=30), finished=now - timedelta(minutes=28))
    slow = run_of(job, RunState.RUNNING, started=now - timedelta(minutes=8), finished=None)
    assert checker() == ["miss"]
    miss = SlaMiss.objects.get(sla=sla)
    assert (miss.run_id, miss.slot_at) == (slow.pk, slow.started_at)
    assert miss.reason == f"run #{slow.pk} of job nightly has been running for 8 min, over 5"
    assert hook.received[0]["notice"] == "sla.miss"

    Run.objects.filter(pk=slow.pk).update(state=RunState.FAILED, finished_at=timezone.now())
    assert checker() == []  # the same run's end is not a second miss
    quick = run_of(job, RunState.SUCCESS, started=timezone.now() - timedelta(minutes=2), finished=timezone.now())
    assert checker() == ["recovery"]
    miss.refresh_from_db()
    assert miss.recovered_by_id == quick.pk and miss.late_success_at is None
    assert [body["notice"] for body in hook.received] == ["sla.miss", "sla.recovery"]
    assert checker() == []


def test_the_checker_runs_every_minute_in_a_fixed_number_of_queries(operator, job, checker, migrated_rows):
    schedule = Schedule.objects.get(name="operations-sla-checker")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("operations.sla_checker.check_slas", "I", 1)

    def queries_for(count: int) -> int:
        for number in range(count):
            kind = ["deadline", "duration"][number % 2]
            extra = {"deadline": "03:00"} if kind == "deadline" else {"max_minutes": 30}
            create_sla(actor=operator, source="api", name=f"sla {count}-{number}", kind=kind, job=job.pk, **extra)
        with CaptureQueriesContext(connection) as queries:
            check_slas()
        return len(queries)

    assert queries_for(2) == queries_for(20)


def test_slas_are_defined_changed_and_deleted_through_the_api_audited(api_client, operator, viewer, job):
    api_client.force_authenticate(viewer)
    assert api_client.post("/api/v1/slas/", {"name": "x", "kind": "duration"}, format="json").status_code == 403
    api_client.force_authenticate(operator)
    body = {"name": "by six", "kind": "deadline", "job": job.pk, "deadline": "06:00", "time_zone": "Europe/Paris",
            "weekdays": ["mon", "tue", "wed", "thu", "fri"]}  # fmt: skip
    created = api_client.post("/api/v1/slas/", body, format="json")
    assert created.status_code == 201, created.json()
    sla = created.json()
    assert (sla["deadline"], sla["project"], sla["weekdays"]) == ("06:00", "chain", body["weekdays"])
    changed = api_client.patch(f"/api/v1/slas/{sla['id']}/", {"deadline": "06:30"}, format="json")
    assert changed.status_code == 200 and changed.json()["deadline"] == "06:30"
    api_client.force_authenticate(viewer)
    assert [s["name"] for s in api_client.get("/api/v1/slas/").json()["results"]] == ["by six"]
    api_client.force_authenticate(operator)
    assert api_client.delete(f"/api/v1/slas/{sla['id']}/").status_code == 204
    events = AuditEvent.objects.filter(action__startswith="sla.").order_by("id")
    assert [(e.action, e.source) for e in events] == [
        ("sla.create", "api"),
        ("sla.update", "api"),
        ("sla.delete", "api"),
    ]
    assert (events[1].before, events[1].after) == ({"deadline": "06:00"}, {"deadline": "06:30"})
    assert not Sla.objects.exists()


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"kind": "deadline", "deadline": "06:00", "time_zone": "Mars/Olympus"}, "time_zone", "not a time zone"),
        ({"kind": "deadline", "deadline": "25:00"}, "deadline", "not a time of day as HH:MM"),
        ({"kind": "deadline", "deadline": "6pm"}, "deadline", "not a time of day as HH:MM"),
        ({"kind": "deadline"}, "deadline", "needs a deadline"),
        ({"kind": "deadline", "deadline": "06:00", "weekdays": ["someday"]}, "weekdays", "list of mon"),
        ({"kind": "duration", "max_minutes": 0}, "max_minutes", "from 1"),
        ({"kind": "duration", "max_minutes": 5, "job": 999999}, "job", "there is no job 999999"),
        (
            {"kind": "freshness", "project": "chain", "source_unique_id": "source.chain.raw.nope"},
            "project",
            "no manifest",
        ),
        ({"kind": "sometimes"}, "kind", ""),
        ({"kind": "duration", "max_minutes": 5, "name": ""}, "name", "blank"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_saved(api_client, operator, job, fields, field, words):
    api_client.force_authenticate(operator)
    body = {"name": "bad", "job": job.pk} | fields
    refused = api_client.post("/api/v1/slas/", body, format="json")
    assert refused.status_code == 400
    assert refused.json()["field"] == field and words in refused.json()["detail"]
    assert not Sla.objects.exists() and not AuditEvent.objects.filter(action__startswith="sla.").exists()


def test_slas_are_defined_changed_and_deleted_on_the_pages_audited(client, operator, viewer, job):
    form = {"name": "under ten", "kind": "duration", "job": job.pk, "max_minutes": 10, "enabled": "on"}
    client.force_login(viewer)
    assert client.get("/slas/").status_code == 200
    assert client.post("/slas/", form).status_code == 403
    client.force_login(operator)
    refused = client.post("/slas/", form | {"max_minutes": 0})
    assert (
        refused.status_code == 400
        and "max_minutes must be a whole number of minutes from 1" in refused.content.decode()
    )
    assert not Sla.objects.exists()
    assert client.post("/slas/", form).status_code == 302
    sla = Sla.objects.get()
    page = client.get("/slas/").content.decode()
    assert "job nightly runs no longer than 10 min" in page and 'data-status="pending"' in page
    assert client.post(f"/slas/{sla.pk}/", form | {"max_minutes": 15}).status_code == 302
    sla.refresh_from_db()
    assert sla.max_minutes == 15
    assert client.post(f"/slas/{sla.pk}/delete/").status_code == 302
    assert not Sla.objects.exists()
    events = AuditEvent.objects.filter(action__startswith="sla.").order_by("id")
    assert [(e.action, e.source) for e in events] == [
        ("sla.create", "web"),
        ("sla.update", "web"),
        ("sla.delete", "web"),
    ]
    assert 'href="/slas/"' in client.get("/jobs/").content.decode()  # the nav link


SOURCE = "source.chain.raw.orders"


@pytest.fixture
def chain_source():
    """chain's current manifest, as lineage keeps it, with one source."""
    from lineage.models import Node, Snapshot

    snapshot = Snapshot.objects.create(
        project="chain", dbt_version="1.9.0", manifest_schema_version=12, origin="run", is_current=True
    )
    Node.objects.create(snapshot=snapshot, unique_id=SOURCE, resource_type="source", name="orders")
    return SOURCE


def test_a_freshness_sla_names_a_source_of_the_current_manifest(api_client, operator, chain_source):
    api_client.force_authenticate(operator)
    body = {"name": "orders fresh", "kind": "freshness", "project": "chain"}
    missing = api_client.post("/api/v1/slas/", body | {"source_unique_id": "source.chain.raw.nope"}, format="json")
    assert missing.status_code == 400 and missing.json()["field"] == "source_unique_id"
    created = api_client.post("/api/v1/slas/", body | {"source_unique_id": chain_source}, format="json")
    assert created.status_code == 201, created.json()
    assert [s.status for s in status_summary()] == ["pending"]  # no freshness verdict yet


def verdict(source: str, status: str, run_id: int, loaded_hours_ago: float) -> None:
    """What a run's `dbt source freshness` leaves in lineage (lineage.freshness.record)."""
    from lineage.models import SourceFreshness

    now = timezone.now()
    SourceFreshness.objects.create(
        project="chain", unique_id=source, source="raw.orders", status=status, run_id=run_id, snapshotted_at=now,
        max_loaded_at=now - timedelta(hours=loaded_hours_ago), age_seconds=loaded_hours_ago * 3600,
    )  # fmt: skip


def test_a_stale_source_misses_its_sla_once_and_a_fresh_verdict_recovers_it(operator, chain_source, hook, checker):
    sla = defined_days_ago(
        create_sla(actor=operator, source="api", name="orders fresh", kind="freshness", project="chain",
                   source_unique_id=chain_source)
    )  # fmt: skip
    verdict(chain_source, "warn", run_id=1, loaded_hours_ago=13)
    assert checker() == []  # warn is not a miss
    verdict(chain_source, "error", run_id=2, loaded_hours_ago=25)
    assert checker() == ["miss"]
    miss = SlaMiss.objects.get(sla=sla)
    assert miss.reason.startswith(f"source {chain_source} of chain is stale: freshness error, last loaded")
    assert miss.reason.endswith("(run #2)")
    assert [s.status for s in status_summary()] == ["missed"]
    verdict(chain_source, "error", run_id=3, loaded_hours_ago=26)
    assert checker() == []  # still stale: the same miss
    verdict(chain_source, "pass", run_id=4, loaded_hours_ago=0.1)
    assert checker() == ["recovery"]
    assert checker() == []
    assert [body["notice"] for body in hook.received] == ["sla.miss", "sla.recovery"]
    assert [s.status for s in status_summary()] == ["met"]


def test_the_slas_page_makes_the_same_number_of_queries_for_any_number_of_slas(client, operator, job, checker):
    client.force_login(operator)

    def queries_for(count: int) -> int:
        for number in range(count):
            sla = create_sla(actor=operator, source="api", name=f"page {count}-{number}", kind="duration",
                             job=job.pk, max_minutes=1)  # fmt: skip
            SlaMiss.objects.create(sla=sla, slot_at=timezone.now() - timedelta(minutes=number), reason="slow")
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/slas/").status_code == 200
        return len(queries)

    assert queries_for(2) == queries_for(10)
