"""GET /metrics: Prometheus text whose domain figures are the metadata database's counts
(whichever web process answers), served to METRICS_ALLOWED_IPS or a METRICS_TOKEN bearer."""

from __future__ import annotations

import ipaddress
import json
import os
import urllib.request
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from entities.models import EntityType, Mode, ParityReport
from operations import figures
from operations.figures import DURATION_BUCKETS, WAIT_BUCKETS
from operations.models import FiguresMark, NodeFailureFigures, RunFigures
from runs.models import FAILED_NODE_STATUSES, FINAL_STATES, Environment, Job, NodeResult, Run, RunState, Worker
from tests.conftest import SESSION_WORKER_NAME

# the scrape and the database's count must not straddle the session cluster's return
pytestmark = pytest.mark.usefixtures("session_cluster_registered")

TOKEN = "metrics-token-for-the-tests-0123"
# Domain figures: the same from every process (request figures are per host by nature).
DOMAIN = ("portal_runs", "portal_run_", "portal_queue_depth", "portal_workers_alive", "portal_node_failures",
          "portal_entity_", "portal_source_freshness", "portal_sla_misses")  # fmt: skip


def samples(text: str, prefixes: tuple[str, ...] = ("portal_",)) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(prefixes)
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[name, frozenset(labels.items())]


@pytest.fixture
def history(db):
    """Runs in every state across two projects (one with a job), node failures, two workers,
    an entity in shadow mode with two parity reports, all with known times."""
    now = timezone.now()
    environment = Environment.objects.create(project="alpha", name="dev", is_default=True)
    nightly = Job.objects.create(project="alpha", name="nightly", environment=environment)
    plan = [  # project, job, state, seconds in the queue, seconds running
        ("alpha", nightly, RunState.SUCCESS, 0.2, 40),
        ("alpha", nightly, RunState.SUCCESS, 3, 400),
        ("alpha", nightly, RunState.FAILED, 0.7, 90),
        ("alpha", None, RunState.SUCCESS, 12, 4),
        ("alpha", None, RunState.RUNNING, 1, None),
        ("alpha", None, RunState.QUEUED, None, None),
        ("beta", None, RunState.ERROR, 0.05, 2),
        ("beta", None, RunState.TIMED_OUT, 100, 3700),
        ("beta", None, RunState.CANCELLED, None, None),  # cancelled while queued
        ("beta", None, RunState.QUEUED, None, None),
        ("beta", None, RunState.QUEUED, None, None),
    ]
    for i, (project, job, state, wait, duration) in enumerate(plan):
        queued = now - timedelta(hours=2, minutes=i)
        started = queued + timedelta(seconds=wait) if wait is not None else None
        finished = None
        if state in FINAL_STATES:
            finished = started + timedelta(seconds=duration) if started else queued + timedelta(seconds=5)
        run = Run.objects.create(
            project=project, job=job, command="build", timeout_seconds=3600, source="api", state=state,
            queued_at=queued, started_at=started, finished_at=finished,
        )  # fmt: skip
        for n, (resource_type, status) in enumerate(
            [("test", "fail"), ("test", "pass"), ("test", "warn"), ("model", "error"), ("seed", "success")]
        ):
            if (i + n) % 2 == 0:
                NodeResult.objects.create(
                    run=run, unique_id=f"{resource_type}.p.n{n}", resource_type=resource_type, status=status
                )
    Worker.objects.create(name="up", hostname="h", pid=1, started_at=now, heartbeat_at=now)
    Worker.objects.create(name="gone", hostname="h", pid=2, started_at=now, heartbeat_at=now - timedelta(hours=1))
    entity = EntityType.objects.create(
        name="metrics_demo", dbt_project="alpha", dbt_selector="+fct_metrics_demo", key_column="id",
        serving_view="serving.metrics_demo", mode=Mode.SHADOW,
    )  # fmt: skip
    counts = {"rules_rows": 100, "dbt_rows": 100, "only_in_rules": 0, "only_in_dbt": 0, "seconds": 1.0}
    ParityReport.objects.create(
        entity=entity, created_at=now - timedelta(days=1), matching_rows=10, mismatched_rows=90, **counts
    )
    ParityReport.objects.create(entity=entity, created_at=now, matching_rows=97, mismatched_rows=3, **counts)


def expected_from_database() -> dict[tuple[str, frozenset], float]:
    """The domain figures, counted from the rows with the ORM and Python, not the collector's SQL."""
    found: dict[tuple[str, frozenset], float] = Counter()
    depth = 0
    for run in Run.objects.select_related("job"):
        job = run.job.name if run.job else ""
        if run.state in FINAL_STATES:
            found["portal_runs_total", frozenset({"project": run.project, "job": job, "state": run.state}.items())] += 1
        else:
            found["portal_runs_active", frozenset({"project": run.project, "state": run.state}.items())] += 1
        depth += run.state == RunState.QUEUED
        started = run.started_at is not None
        series = [  # durations of runs that ended after starting; waits of runs that started
            ("portal_run_duration_seconds", {"project": run.project, "job": job}, DURATION_BUCKETS,
             run.duration_seconds if started and run.is_final else None),
            ("portal_run_queue_wait_seconds", {"project": run.project}, WAIT_BUCKETS,
             run.wait_seconds if started else None),
        ]  # fmt: skip
        for name, labels, bounds, seconds in series:
            found[f"{name}_count", frozenset(labels.items())] += seconds is not None
            found[f"{name}_sum", frozenset(labels.items())] += seconds or 0
            for bound in (*bounds, float("inf")):
                le = "+Inf" if bound == float("inf") else str(float(bound))
                found[f"{name}_bucket", frozenset({**labels, "le": le}.items())] += (
                    seconds is not None and seconds <= bound
                )
    found["portal_queue_depth", frozenset()] = depth
    for project, resource_type in NodeResult.objects.filter(status__in=FAILED_NODE_STATUSES).values_list(
        "run__project", "resource_type"
    ):
        found[
            "portal_node_failures_total", frozenset({"project": project, "resource_type": resource_type}.items())
        ] += 1
    found["portal_workers_alive", frozenset()] = Worker.objects.alive().count()
    for entity in EntityType.objects.all():
        for mode in Mode.values:
            found["portal_entity_mode", frozenset({"entity": entity.name, "mode": mode}.items())] = mode == entity.mode
        latest = entity.latest_parity()
        if latest:
            found["portal_entity_parity_ratio", frozenset({"entity": entity.name}.items())] = (
                float(latest.percent) / 100
            )
    return found


def domain(found: dict) -> dict:
    return {key: value for key, value in found.items() if key[0].startswith(DOMAIN) and not key[0].endswith("_created")}


def assert_matches_database(found: dict) -> None:
    expected = expected_from_database()
    assert set(domain(found)) == set(expected)
    for key, number in expected.items():
        assert found[key] == pytest.approx(float(number), abs=1e-3), key


def test_the_scrape_equals_the_databases_counts(client, history):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(response.content.decode())
    assert_matches_database(found)
    # Spot checks a reader can follow from the fixture.
    assert value(found, "portal_runs_total", project="alpha", job="nightly", state="success") == 2
    assert value(found, "portal_runs_total", project="beta", job="", state="cancelled") == 1
    assert value(found, "portal_queue_depth") == 3
    assert value(found, "portal_runs_active", project="alpha", state="running") == 1
    assert value(found, "portal_run_duration_seconds_bucket", project="alpha", job="nightly", le="60.0") == 1
    assert value(found, "portal_run_duration_seconds_count", project="alpha", job="nightly") == 3
    assert value(found, "portal_run_duration_seconds_count", project="beta", job="") == 2
    assert value(found, "portal_run_queue_wait_seconds_bucket", project="alpha", le="1.0") == 3
    # the fixture's one live worker, and the session's queue cluster when a test before this one
    # (under `pytest -n`, any test of this process) started it: it beats into this database
    session_cluster = Worker.objects.alive().filter(name=SESSION_WORKER_NAME).count()
    assert value(found, "portal_workers_alive") == 1 + session_cluster
    assert value(found, "portal_entity_mode", entity="metrics_demo", mode="shadow") == 1
    assert value(found, "portal_entity_mode", entity="metrics_demo", mode="dbt") == 0
    assert value(found, "portal_entity_parity_ratio", entity="metrics_demo") == pytest.approx(0.97)
    assert (
        sum(v for (name, _), v in found.items() if name == "portal_node_failures_total")
        == NodeResult.objects.filter(status__in=FAILED_NODE_STATUSES).count()
    )


def test_settled_figures_plus_the_runs_finished_since_stay_the_databases_counts(client, history, monkeypatch):
    client.get("/metrics")  # settles the fixture's runs: they finished hours ago
    assert RunFigures.objects.filter(project="alpha", state="success").exists()
    assert NodeFailureFigures.objects.exists()
    now = timezone.now()
    ended = Run.objects.filter(project="alpha", state=RunState.QUEUED).get()
    Run.objects.filter(pk=ended.pk).update(state=RunState.SUCCESS, started_at=now, finished_at=now)
    NodeResult.objects.create(run=ended, unique_id="test.p.late", resource_type="test", status="fail")
    assert_matches_database(samples(client.get("/metrics").content.decode()))  # counted live

    monkeypatch.setattr(figures, "SETTLE_MARGIN", timedelta(0))
    monkeypatch.setattr(figures, "SETTLE_EVERY", timedelta(0))
    found = samples(client.get("/metrics").content.decode())  # settles it too
    assert FiguresMark.objects.get().settled_before > now
    assert_matches_database(found)
    assert value(found, "portal_runs_total", project="alpha", job="", state="success") == 2  # added to a settled row


def test_request_figures_count_each_request_by_view_and_status(client, db):
    def count(view: str, status: str) -> float:
        found = samples(client.get("/metrics").content.decode())
        return found.get(
            ("portal_http_requests_total", frozenset({"method": "GET", "view": view, "status": status}.items())), 0
        )

    before_ok, before_missing = count("healthz", "200"), count("unresolved", "404")
    for _ in range(3):
        client.get("/healthz")
    client.get("/no-such-page/")
    assert count("healthz", "200") == before_ok + 3
    assert count("unresolved", "404") == before_missing + 1
    text = client.get("/metrics").content.decode()
    assert 'portal_http_request_duration_seconds_bucket{le="+Inf",method="GET",view="healthz"}' in text


def test_only_allowed_addresses_or_the_token_may_scrape(client, settings, caplog, db):
    assert client.get("/metrics").status_code == 200  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.post("/metrics").status_code == 405
    # No token configured: any bearer is refused.
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 401

    settings.METRICS_TOKEN = TOKEN
    ok = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and b"portal_queue_depth" in ok.content
    bad = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}x")
    assert bad.status_code == 401 and bad["WWW-Authenticate"].startswith("Bearer")
    # A wrong token is refused even from an allowed address.
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token-wrong-token").status_code == 401
    assert TOKEN[:-1] not in caplog.text

    settings.METRICS_ALLOWED_IPS = [ipaddress.ip_network("10.0.0.0/8")]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_two_web_processes_answer_the_same_domain_figures_the_database_holds(history, tmp_path, seeded_warehouse):
    from django.db import connection

    from tests.hosts import Host

    env = {**os.environ, "DATABASE_NAME": connection.settings_dict["NAME"], "WEB_WORKERS": "2"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # The second also logs JSON (LOG_FORMAT=json), gunicorn's own lines included.
    hosts = [Host("web", "web-1", tmp_path, env), Host("web", "web-2", tmp_path, {**env, "LOG_FORMAT": "json"})]
    try:
        for host in hosts:
            host.start()

        def scrape(host: Host) -> dict:
            with urllib.request.urlopen(f"{host.url}/metrics", timeout=30) as answer:
                return samples(answer.read().decode())

        scrapes = [scrape(host) for host in hosts for _ in range(4)]  # each of each host's gunicorn workers
        assert all(domain(found) == domain(scrapes[0]) for found in scrapes)
        assert_matches_database(scrapes[0])

        # Request figures are per host, summed over its gunicorn workers (multiprocess mode).
        key = ("portal_http_requests_total", frozenset({"method": "GET", "view": "healthz", "status": "200"}.items()))
        before = scrape(hosts[0]).get(key, 0)
        for _ in range(6):
            urllib.request.urlopen(f"{hosts[0].url}/healthz", timeout=10).read()
        assert [scrape(hosts[0])[key] for _ in range(4)] == [before + 6] * 4

        logged = [json.loads(line) for line in hosts[1].log_text().splitlines() if line.startswith("{")]
        assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in logged)
        assert any(line["logger"] == "gunicorn.access" and "/metrics" in line["message"] for line in logged)
        assert not [line for line in hosts[1].log_text().splitlines() if line.startswith("[20")]  # gunicorn's text
    finally:
        for host in hosts:
            host.stop()


@pytest.mark.parametrize(
    ("variable", "bad", "says"),
    [
        ("METRICS_ALLOWED_IPS", "127.0.0.1,10.0.0.0/33", "METRICS_ALLOWED_IPS"),
        ("METRICS_TOKEN", "short", "METRICS_TOKEN must be at least 16 characters"),
    ],
)
def test_a_bad_metrics_setting_stops_the_start_naming_it(variable, bad, says):
    from tests.test_settings import manage

    result = manage("check", **{variable: bad})
    assert result.returncode != 0
    assert says in result.stderr


def test_freshness_ages_and_sla_misses_are_scraped_from_their_records(client, db):
    from datetime import timedelta

    from django.utils import timezone

    from lineage.models import SourceFreshness
    from operations.models import Sla, SlaKind, SlaMiss

    now = timezone.now()
    for run_id, hours in ((1, 50), (2, 3)):  # the latest check of raw.users counts
        SourceFreshness.objects.create(
            project="alpha", unique_id="source.alpha.raw.users", source="raw.users", status="pass",
            snapshotted_at=now - timedelta(hours=1), max_loaded_at=now - timedelta(hours=hours), run_id=run_id,
        )  # fmt: skip
    missed = Sla.objects.create(name="users fresh", kind=SlaKind.FRESHNESS, project="alpha",
                                source_unique_id="source.alpha.raw.users")  # fmt: skip
    Sla.objects.create(name="never missed", kind=SlaKind.FRESHNESS, project="alpha", source_unique_id="source.x.y.z")
    for hours in (1, 2):
        SlaMiss.objects.create(sla=missed, slot_at=now - timedelta(hours=hours), reason="stale")
    found = samples(client.get("/metrics").content.decode())
    age = value(found, "portal_source_freshness_age_seconds", project="alpha", source="raw.users")
    assert 3 * 3600 <= age < 3 * 3600 + 60
    assert value(found, "portal_sla_misses_total", sla="users fresh") == 2
    assert value(found, "portal_sla_misses_total", sla="never missed") == 0
