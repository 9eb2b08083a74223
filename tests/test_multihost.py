"""Three hosts on this machine (issue 12's proof): a web process and two worker clusters,
each with its own PORTAL_WORKER_NAME and RUNS_DIR, sharing only the machine's PostgreSQL,
the broker and the artifact storage: Redis with S3 on moto's server, then the ORM broker with
the database (each broker and each store once, in two installations rather than four). The
web process has neither worker's RUNS_DIR: whatever it serves of a run came through the
shared storage.

Minutes of real processes and the machine's services: CI runs it in its second pass only
(SECOND_PASS_ONLY: with DATABASE_URL set). Figures (runs per worker, reaping time, cancel
latency) are printed into the test log."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from dbtlib.launcher import group_alive
from runs.backends import application_name
from runs.models import Run, RunState
from tests.conftest import artifact_store_env, wait_until
from tests.hosts import Api, Host

SECOND_PASS_ONLY = True  # conftest: only with DATABASE_URL set (CI's second pass)
RUNS = 16  # four for each of the four worker slots (two hosts, QUEUE_WORKERS=2)
COMPILED_NODE = "model.inventory_transforms.stg_users"

pytestmark = [pytest.mark.django_db(transaction=True)]


def _host_env(broker: str, backend_env: dict[str, str]) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "QUEUE_NAME": f"portal-multihost-{uuid.uuid4().hex[:8]}",
        "QUEUE_WORKERS": "2",
        "RUN_HEARTBEAT_SECONDS": "1",
        "RUN_STALE_AFTER_SECONDS": "5",
        "WEB_WORKERS": "2",
        **backend_env,
    }
    if broker == "orm":
        env.pop("REDIS_URL", None)
    else:
        assert env.get("REDIS_URL"), "CI's second pass sets REDIS_URL"
    return env


class Installation:
    """web + host-a + host-b, and an operator's API on the web host."""

    def __init__(self, work, broker: str, backend_env: dict[str, str], token: str) -> None:
        env = _host_env(broker, backend_env)
        self.web = Host("web", "web", work, env)
        self.workers = {name: Host("worker", name, work, env) for name in ("host-a", "host-b")}
        self.api = Api("", token)

    def start(self) -> Installation:
        self.web.start()
        self.api.base_url = self.web.url
        for host in self.workers.values():
            host.start()
        return self

    def stop(self) -> None:
        for host in (*self.workers.values(), self.web):
            host.stop()

    def trigger(self, **request) -> int:
        return self.api.json("POST", "/api/v1/runs/", request, expect=202)["id"]

    def wait_final(self, run_id: int, timeout: float = 300) -> dict:
        found = {}

        def final() -> bool:
            found.update(self.api.json("GET", f"/api/v1/runs/{run_id}/"))
            return found["state"] in {s.value for s in (RunState.SUCCESS, RunState.FAILED, RunState.ERROR)} | {
                RunState.CANCELLED.value,
                RunState.TIMED_OUT.value,
            }

        wait_until(final, f"run #{run_id} to end", timeout, interval=0.5)
        return found

    def logs(self) -> str:
        return "\n".join(f"--- {h.name}:\n{h.log_text()[-3000:]}" for h in (self.web, *self.workers.values()))


STORE_OF_BROKER = {"redis": "s3", "orm": "database"}


@pytest.fixture(params=sorted(STORE_OF_BROKER))
def broker(request) -> str:
    return request.param


@pytest.fixture
def installation(request, tmp_path, broker, seeded_warehouse, operator):
    from accounts.models import ApiToken

    # transactional tests empty django-q2's tables: the reaper's schedule is made again
    Schedule.objects.update_or_create(
        name="runs-reaper",
        defaults={"func": "runs.reaper.reap_lost_runs", "schedule_type": Schedule.MINUTES, "minutes": 1},
    )
    token = ApiToken.issue(operator, "multihost", 1)[1]
    backend_env = artifact_store_env(STORE_OF_BROKER[broker], request)
    portal = Installation(tmp_path, broker, backend_env, token)
    try:
        portal.start()
        yield portal
    except BaseException:
        print(portal.logs())
        raise
    finally:
        portal.stop()


def _dbt_starts(run_id: int) -> int:
    """How many dbt invocations the run's log shows (the worker writes each one's argv)."""
    from runs.models import RunLogChunk

    text = "\n".join(RunLogChunk.objects.filter(run_id=run_id).values_list("text", flat=True))
    return sum(1 for line in text.splitlines() if line.startswith("$ dbt "))


def test_many_runs_start_dbt_once_each_on_both_hosts_and_the_web_serves_their_artifacts(installation, capsys):
    ids = [installation.trigger(project="inventory_transforms", command="compile") for _ in range(RUNS)]
    runs = [installation.wait_final(run_id, timeout=600) for run_id in ids]

    assert [r["state"] for r in runs] == ["success"] * RUNS, [(r["id"], r["state"], r["reason"]) for r in runs]
    assert all(_dbt_starts(run_id) == 1 for run_id in ids)
    per_worker = Counter(r["worker"] for r in runs)
    assert set(per_worker) == {"host-a", "host-b"}, per_worker

    web_runs_dir = installation.web.runs_dir
    for run_id in ids:
        assert not (web_runs_dir / str(run_id)).exists()
        status, body = installation.api.call("GET", f"/api/v1/runs/{run_id}/artifacts/manifest.json")
        assert status == 200
        assert COMPILED_NODE in json.loads(body)["nodes"]
        status, body = installation.api.call("GET", f"/api/v1/runs/{run_id}/artifacts/run_results.json")
        assert status == 200
        assert COMPILED_NODE in {result["unique_id"] for result in json.loads(body)["results"]}
        status, body = installation.api.call(
            "GET", f"/api/v1/runs/{run_id}/artifacts/compiled.sql?node={COMPILED_NODE}"
        )
        assert status == 200
        assert b'"raw"."users"' in body and b"{{" not in body
    with capsys.disabled():
        print(
            f"\nmultihost [{installation.web.env.get('REDIS_URL') and 'redis' or 'orm'}, "
            f"{installation.web.env['ARTIFACT_STORAGE'].split(':')[0]}]: {RUNS} runs, per worker {dict(per_worker)}"
        )


def _slow_run(installation, seconds: int) -> int:
    if not Run.objects.filter(project="sleepy", command="parse", state=RunState.SUCCESS).exists():
        installation.wait_final(installation.trigger(project="sleepy", command="parse"))
    return installation.trigger(project="sleepy", command="run", select="slow", vars={"sleep_seconds": seconds})


def _running(run_id: int) -> Run:
    run = Run.objects.get(pk=run_id)
    wait_until(lambda: run.refresh_from_db() or (run.state == RunState.RUNNING and run.process_group), "dbt to run")
    return run


def _warehouse_backends(run_id: int) -> int:
    with psycopg.connect(settings.WAREHOUSE_CONNINFO, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name(run_id)]
        ).fetchone()[0]


# Reaping and cancelling read and write the run's row: one broker each (the runs test has both).
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_killed_hosts_run_is_reaped_by_the_other_and_its_dbt_stopped_when_it_comes_back(installation, capsys):
    run = _running(_slow_run(installation, 300))
    owner = installation.workers[run.worker]
    dbt_group = run.process_group
    killed_at = time.monotonic()
    owner.kill()
    os.killpg(dbt_group, signal.SIGSTOP)  # a hung dbt: it cannot even notice its query ending
    # The other host's reaper, on its next minute; brought forward so the test waits less.
    Schedule.objects.filter(name="runs-reaper").update(next_run=timezone.now() - timedelta(seconds=1))

    wait_until(lambda: run.refresh_from_db() or run.is_final, "the other host to reap the run", 180, interval=0.5)
    reaped_after = time.monotonic() - killed_at
    assert run.state == RunState.ERROR
    assert "worker lost" in run.reason and run.worker in run.reason
    assert group_alive(dbt_group), "the reaper on another host signalled a process of the lost one"
    assert _warehouse_backends(run.pk) == 0

    restarted_at = time.monotonic()
    owner.start()
    wait_until(lambda: not group_alive(dbt_group), "the restarted host to stop the leftover dbt", 60)
    cleaned_after = time.monotonic() - restarted_at

    def log() -> str:
        return "\n".join(run.log_chunks.values_list("text", flat=True))

    wait_until(lambda: f"worker start ({owner.name}): stopped this run's leftover dbt" in log(), "the log note", 30)
    run.refresh_from_db()
    assert run.state == RunState.ERROR  # it stays lost; nothing starts it again
    # and that host takes work again
    installation.workers[next(n for n in installation.workers if n != owner.name)].stop()
    after = installation.wait_final(installation.trigger(project="sleepy", command="run", select="fast"))
    assert (after["state"], after["worker"]) == ("success", owner.name)
    with capsys.disabled():
        print(
            f"\nmultihost: killed {owner.name}'s run reaped after {reaped_after:.1f} s "
            f"(stale after 5 s, reaper brought forward); leftover dbt stopped {cleaned_after:.1f} s after restart"
        )


@pytest.mark.parametrize("broker", ["orm"], indirect=True)
def test_cancel_from_the_web_reaches_a_run_that_host_b_holds(installation, capsys):
    installation.workers["host-a"].stop()  # only host-b can take it
    run = _running(_slow_run(installation, 300))
    assert run.worker == "host-b"
    asked = time.monotonic()
    installation.api.json("POST", f"/api/v1/runs/{run.pk}/cancel/", expect=202)
    final = installation.wait_final(run.pk, timeout=settings.RUN_CANCEL_GRACE_SECONDS + 30)
    latency = time.monotonic() - asked
    assert final["state"] == "cancelled"
    assert not group_alive(run.process_group)
    assert _warehouse_backends(run.pk) == 0
    with capsys.disabled():
        print(f"\nmultihost: cancel of a run on host-b from the web: cancelled {latency:.2f} s after the request")


@pytest.mark.parametrize("broker", ["orm"], indirect=True)
def test_a_push_between_runs_of_a_job_leaves_each_run_on_its_own_commit_whichever_host_takes_it(
    installation, project_repo, admin_user, operator, capsys
):
    from lineage.git_projects import register_git_project
    from runs.jobs import create_job

    register_git_project(actor=admin_user, source="api", name="shop_git", repository_url=str(project_repo.bare))
    job = create_job(actor=operator, source="api", project="shop_git", name="build", steps=["dbt build"])
    before = [installation.api.json("POST", f"/api/v1/jobs/{job.pk}/run/", {}, expect=202)["id"] for _ in range(2)]
    pushed = project_repo.commit({"models/big_orders.sql": "select * from {{ ref('orders') }}\n"}, "big_orders")
    after = [installation.api.json("POST", f"/api/v1/jobs/{job.pk}/run/", {}, expect=202)["id"] for _ in range(2)]
    runs = {run_id: installation.wait_final(run_id) for run_id in before + after}

    assert [runs[i]["state"] for i in before + after] == ["success"] * 4, [r["reason"] for r in runs.values()]
    assert [runs[i]["git_sha"] for i in before + after] == [project_repo.first] * 2 + [pushed] * 2
    for run_id, run in runs.items():
        built = set(Run.objects.get(pk=run_id).node_results.values_list("name", flat=True))
        assert ("big_orders" in built) == (run["git_sha"] == pushed), (run_id, built)
        host = installation.workers[run["worker"]]  # the host that ran it checked the commit out itself
        assert list(host.git_cache_dir.glob(f"checkouts/*/{run['git_sha']}/dbt_project.yml"))
    with capsys.disabled():
        print(f"\nmultihost git: runs per worker {dict(Counter(r['worker'] for r in runs.values()))}")
