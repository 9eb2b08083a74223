"""GET /healthz (liveness: no database) and GET /readyz (readiness: the metadata database, the
warehouse and the queue's broker, each named with its outcome; 503 when one fails)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-that-must-not-show"


def closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_answers_without_touching_any_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_readyz_is_200_with_a_worker_beating_and_503_naming_it_while_none_is(
    client, settings, tmp_path, warehouse_conninfo
):
    from django.db import connection

    from tests.hosts import Host

    settings.READY_WORKER_MAX_AGE = 3
    env = {**os.environ, "DATABASE_NAME": connection.settings_dict["NAME"], "RUN_HEARTBEAT_SECONDS": "1"}
    worker = Host("worker", "ready-probe", tmp_path, env).start()
    try:
        # the answer read is one that names the probe: the session's queue cluster, when this
        # xdist process started it, makes /readyz 200 on its own as well
        def naming_the_probe():
            answer = client.get("/readyz")
            return "ready-probe" in answer.json()["checks"]["worker"].get("detail", "") and answer

        seen = wait_until(naming_the_probe, "/readyz to see the worker", 30, interval=0.5)
        assert seen.status_code == 200
        body = seen.json()
        assert body["status"] == "ok"
        assert {name: check["ok"] for name, check in body["checks"].items()} == {
            "database": True,
            "warehouse": True,
            "broker": True,
            "worker": True,
        }
        assert "ready-probe" in body["checks"]["worker"]["detail"]
        worker.stop()
        # the answer that says 503 is the one read: the session's queue cluster beats into this
        # database every few seconds
        missed = wait_until(
            lambda: (answer := client.get("/readyz")).status_code == 503 and answer,
            "/readyz to miss the worker",
            30,
            interval=0.5,
        )
        checks = missed.json()["checks"]
        assert checks["worker"]["ok"] is False and checks["database"]["ok"] is True
        worker.start()
        wait_until(lambda: client.get("/readyz").status_code == 200, "/readyz to see it back", 60, interval=0.5)
    finally:
        worker.stop()


def test_readyz_is_503_naming_the_warehouse_on_a_closed_port(client, settings):
    settings.WAREHOUSE_CONNINFO = f"host=127.0.0.1 port={closed_port()} dbname=warehouse user=dbt password={PASSWORD}"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["warehouse"]["ok"] is False
    assert "refused" in body["checks"]["warehouse"]["error"].lower()
    assert body["checks"]["database"]["ok"] is True
    assert PASSWORD not in response.content.decode()


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_probes_answer_get_and_head_only(client, method):
    for url in ("/healthz", "/readyz"):
        assert getattr(client, method)(url).status_code == 405, url
        assert client.head(url).status_code in (200, 503), url


def test_the_probes_are_not_redirected_to_https(client, settings):
    """A container health check talks plain HTTP to the process: no 301 to https."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/runs/").status_code == 301


def serve(tmp_path: Path, **env: str):
    """A real gunicorn with the test session's environment plus `env`; yields its base URL."""
    from django.db import connection

    port = closed_port()
    environ = {**os.environ, "DATABASE_NAME": connection.settings_dict["NAME"], "PYTHONUNBUFFERED": "1", **env}
    log_file = tmp_path / "gunicorn.log"
    with open(log_file, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "transformation_portal.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--timeout", "60"],
            cwd=ROOT, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, log_file.read_text()
        try:
            return urllib.request.urlopen(f"{base}/healthz", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_until(answers, "gunicorn to answer /healthz", timeout=60, interval=0.3)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def web_on_a_dead_redis(tmp_path):
    """A web process whose broker is Redis on a closed port (whatever broker the suite uses)."""
    yield from serve(tmp_path, REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0")


def test_readyz_is_503_naming_the_broker_when_redis_is_down(web_on_a_dead_redis, warehouse_conninfo):
    status, text = get(f"{web_on_a_dead_redis}/readyz")
    assert status == 503, text
    checks = json.loads(text)["checks"]
    assert checks["broker"]["ok"] is False
    assert "refused" in checks["broker"]["error"].lower()
    assert checks["database"]["ok"] is True and checks["warehouse"]["ok"] is True
    assert PASSWORD not in text


@pytest.fixture
def web_with_everything_down(tmp_path):
    """A web process whose metadata database, warehouse and Redis all point at closed ports."""
    dead = closed_port()
    yield from serve(
        tmp_path,
        DATABASE_URL=f"postgres://portal:{PASSWORD}@127.0.0.1:{dead}/portal",
        WAREHOUSE_URL=f"postgres://dbt:{PASSWORD}@127.0.0.1:{dead}/warehouse",
        REDIS_URL=f"redis://:{PASSWORD}@127.0.0.1:{dead}/0",
    )


def test_healthz_stays_up_and_readyz_names_every_failure_when_all_is_down(web_with_everything_down):
    status, text = get(f"{web_with_everything_down}/healthz")
    assert (status, json.loads(text)) == (200, {"status": "ok"})
    status, text = get(f"{web_with_everything_down}/readyz")
    assert status == 503, text
    body = json.loads(text)
    assert body["status"] == "failing"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": False,
        "warehouse": False,
        "broker": False,
        "worker": False,
    }
    assert PASSWORD not in text
