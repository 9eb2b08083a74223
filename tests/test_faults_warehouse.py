"""Fault injection on a portal installation of its own (`manage.py runportal` on a fresh
PORTAL_DATA_DIR, never the test session's database): the embedded PostgreSQL killed in the
middle of a refresh, and the web process killed while an approval is in flight."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.conftest import wait_until
from tests.test_runportal import EXTERNAL, ROOT, free_port


class Portal:
    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="fw", dir="/tmp"))  # short: the db socket lives here
        self.base = f"http://127.0.0.1:{free_port()}"
        self.env = {k: v for k, v in os.environ.items() if k not in EXTERNAL}
        self.env.update(
            PORTAL_DATA_DIR=str(self.data_dir), PORT=self.base.rsplit(":", 1)[1], WEB_WORKERS="1",
            QUEUE_WORKERS="1", PYTHONUNBUFFERED="1", RUN_HEARTBEAT_SECONDS="1", RUN_STALE_AFTER_SECONDS="5",
        )  # fmt: skip
        self.log = open(self.data_dir / "portal.log", "w+")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runportal"],
            env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self.answers, lambda: f"the portal to answer:\n{self.output()[-3000:]}", interval=0.5)
        wait_until(lambda: "running" in self.output(), "the queue worker to come up", timeout=60)

    def output(self) -> str:
        return (self.data_dir / "portal.log").read_text()

    def answers(self) -> bool:
        assert self.process.poll() is None, self.output()[-3000:]
        try:
            return urllib.request.urlopen(f"{self.base}/login/", timeout=2).status == 200
        except OSError:
            return False

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def sql(self, dbname: str, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(host=str(self.pgdata), user="postgres", dbname=dbname, autocommit=True) as conn:
            return conn.execute(statement, params).fetchall()

    def shell(self, code: str) -> str:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code],
            env=self.env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.strip().splitlines()[-1]  # after the shell's own banner

    def token(self, username: str) -> str:
        return self.shell(
            "from django.contrib.auth import get_user_model; from accounts.models import ApiToken; "
            f"print(ApiToken.issue(get_user_model().objects.get(username='{username}'), 'faults', 1)[1])"
        )

    def api(
        self, method: str, path: str, token: str, body: dict | None = None, timeout: float = 30
    ) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.base}{path}", data=json.dumps(body or {}).encode() if method == "POST" else None, method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
        subprocess.run(
            [sys.executable, "-c", "import sys; from transformation_portal import embedded_postgres as e; "
             "from pathlib import Path; e.stop(Path(sys.argv[1]))", str(self.pgdata)],
            cwd=ROOT, check=False,
        )  # fmt: skip
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def portal():
    portal = Portal()
    yield portal
    portal.stop()


def run_row(portal: Portal, run_id: int) -> tuple[str, str] | None:
    try:
        return portal.sql("portal", "select state, reason from runs_run where id = %s", (run_id,))[0]
    except psycopg.OperationalError:
        return None  # the database is still down


def restart_postgres(portal: Portal) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from transformation_portal import embedded_postgres as e; "
         "from pathlib import Path; e.ensure_running(Path(sys.argv[1]))", str(portal.pgdata)],
        cwd=ROOT, capture_output=True, check=False,
    )  # fmt: skip
    return result.returncode == 0


def test_embedded_postgres_killed_mid_refresh_ends_the_run_error_once_and_the_portal_serves_again(portal):
    operator = portal.token("operator")
    blocker = psycopg.connect(host=str(portal.pgdata), user="postgres", dbname="warehouse")
    blocker.execute("lock table raw.users in access exclusive mode")  # the refresh stays mid-run
    status, body = portal.api("POST", "/api/v1/entities/users/refresh/", operator)
    assert status == 202, body
    run_id = body["id"]
    waiting = "select count(*) from pg_locks where not granted and relation = 'raw.users'::regclass"
    wait_until(lambda: portal.sql("warehouse", waiting)[0][0] > 0, "the refresh to wait on raw.users")

    postmaster = psutil.Process(int((portal.pgdata / "postmaster.pid").read_text().split()[0]))
    postmaster.send_signal(signal.SIGKILL)
    postmaster.wait(30)
    blocker.close()
    wait_until(lambda: restart_postgres(portal), "the embedded PostgreSQL to start again", timeout=60, interval=1)

    state, reason = wait_until(
        lambda: (
            (row := run_row(portal, run_id))
            and row[0] in ("success", "failed", "error", "cancelled", "timed_out")
            and row
        ),
        "the run to end",
        timeout=240,
        interval=1,
    )
    assert state == "error", reason
    refreshes = "select count(*) from runs_run where kind = 'entity-refresh'"
    assert portal.sql("portal", refreshes)[0][0] == 1, "nothing doubled"
    started = portal.sql(
        "portal",
        "select count(*) from runs_runlogchunk where run_id = %s and text like %s",
        (run_id, "%refreshing users%"),
    )
    assert started[0][0] <= 1, "the run never started twice"

    assert portal.process.poll() is None, portal.output()[-3000:]
    wait_until(lambda: portal.api("GET", "/api/v1/runs/", operator, timeout=10)[0] == 200, "the API to serve again")
    status, body = portal.api("POST", "/api/v1/entities/users/refresh/", operator)
    assert status == 202, body
    wait_until(lambda: run_row(portal, body["id"])[0] == "success", "a new refresh to succeed", timeout=240)


def gunicorn_worker(portal: Portal) -> psutil.Process:
    runportal = psutil.Process(portal.process.pid)
    master = next(p for p in runportal.children() if "gunicorn" in " ".join(p.cmdline()))
    return wait_until(lambda: next(iter(master.children()), None), "a gunicorn worker")


def test_web_worker_killed_during_an_approval_leaves_one_decision(portal):
    status, body = portal.api("POST", "/api/v1/entities/users/refresh/", portal.token("operator"))
    assert status == 202, body  # builds rules_engine.users, which shadow mode serves
    wait_until(lambda: run_row(portal, body["id"])[0] == "success", "the first refresh to succeed", timeout=240)
    request_id = portal.shell(
        "from django.contrib.auth import get_user_model; from entities import services; "
        "from entities.models import EntityType; "
        "r = services.request_mode_change(EntityType.objects.get(name='users'), mode='shadow', canary_percent=None, "
        "reason='try dbt', actor=get_user_model().objects.get(username='operator'), source='web'); print(r.pk)"
    )
    approver = portal.token("approver")
    worker = gunicorn_worker(portal)
    # The entity row is locked, so the approval waits inside its transaction for us.
    holder = psycopg.connect(host=str(portal.pgdata), user="postgres", dbname="portal")
    holder.execute("select 1 from entities_entitytype where name = 'users' for update")
    answer: dict = {}

    def approve() -> None:
        try:
            answer["status"] = portal.api("POST", f"/api/v1/mode-requests/{request_id}/approve/", approver, {})[0]
        except OSError as error:
            answer["error"] = error

    thread = threading.Thread(target=approve)
    thread.start()
    waiting = "select count(*) from pg_stat_activity where datname = 'portal' and wait_event_type = 'Lock'"
    wait_until(lambda: portal.sql("portal", waiting)[0][0] > 0, "the approval to wait for the entity lock")
    worker.send_signal(signal.SIGKILL)
    worker.wait(30)
    thread.join(60)
    holder.rollback()
    holder.close()
    assert "error" in answer or answer.get("status", 0) >= 500, answer

    wait_until(lambda: portal.answers(), "gunicorn to answer again")
    statuses = [portal.api("POST", f"/api/v1/mode-requests/{request_id}/approve/", approver, {}) for _ in range(2)]
    assert [status for status, _ in statuses] == [200, 409], statuses
    assert statuses[1][1]["code"] == "already_decided"
    decided = "select status, count(*) over () from entities_modechangerequest where id = %s"
    assert portal.sql("portal", decided, (int(request_id),)) == [("approved", 1)]
    approvals = "select count(*) from audit_auditevent where action = 'entity.mode_request.approve'"
    assert portal.sql("portal", approvals)[0][0] == 1
    assert portal.sql("portal", "select count(*) from entities_modechange where kind = 'approval'")[0][0] == 1
