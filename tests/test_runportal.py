"""`make run`'s command on a fresh data directory: the portal comes up on the embedded
PostgreSQL with demo users and a live worker, and Ctrl-C stops all of it."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
# a fresh installation: none of the test session's or CI's database and queue settings
EXTERNAL = (
    "DATABASE_URL", "WAREHOUSE_URL", "REDIS_URL", "DATABASE_NAME", "WAREHOUSE_DB_NAME", "DBT_HOST",
    "QUEUE_NAME", "RUNS_DIR", "TEST_DATABASE_NAME",
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def portal():
    data_dir = Path(tempfile.mkdtemp(prefix="rp", dir="/tmp"))  # short: the db socket lives here
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL}
    env.update(PORTAL_DATA_DIR=str(data_dir), PORT=str(port), WEB_WORKERS="1", QUEUE_WORKERS="1", PYTHONUNBUFFERED="1")
    log = open(data_dir / "portal.log", "w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runportal"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, (data_dir / "portal.log").read_text()
        try:
            return urllib.request.urlopen(f"{base}/login/", timeout=2).status == 200
        except OSError:
            return False

    wait_until(answers, "the portal to answer", interval=0.5)
    yield process, base, data_dir
    if process.poll() is None:
        process.kill()
    log.close()
    subprocess.run(
        [sys.executable, "-c", "import sys; from transformation_portal import embedded_postgres as e; "
         "from pathlib import Path; e.stop(Path(sys.argv[1]))", str(data_dir / "postgres")],
        cwd=ROOT, check=False,
    )  # fmt: skip
    shutil.rmtree(data_dir, ignore_errors=True)


def log_in(base: str, username: str, password: str) -> tuple[urllib.request.OpenerDirector, str]:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(f"{base}/login/").read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf})
    request = urllib.request.Request(f"{base}/login/", body.encode(), headers={"Referer": f"{base}/login/"})
    home = opener.open(request).read().decode()
    return opener, home


def test_start_command_brings_up_web_worker_and_demo_data_then_stops_cleanly(portal):
    process, base, data_dir = portal
    log = data_dir / "portal.log"
    wait_until(
        lambda: re.search(r"Q Cluster \S+ \[portal\] running", log.read_text()),
        lambda: f"the queue worker to come up:\n{log.read_text()[-3000:]}",
        timeout=30,
    )
    output = log.read_text()
    assert f"Transformation Portal is up: {base}/" in output
    for role in ("viewer", "operator", "approver", "admin"):
        assert f"{role}-demo" in output  # the printed demo login
        opener, home = log_in(base, role, f"{role}-demo")
        assert f"{role} · {role}" in home, f"{role} could not log in"
        assert "inventory_transforms" in home
        assert opener.open(f"{base}/audit/").status == 200

    socket_dir = str(data_dir / "postgres")
    with psycopg.connect(host=socket_dir, user="postgres", dbname="warehouse") as conn:
        assert conn.execute("SELECT count(*) FROM raw.users").fetchone()[0] > 0  # demo data seeded
    assert process.poll() is None  # web and worker still up after all that

    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    assert "Embedded PostgreSQL stopped." in (data_dir / "portal.log").read_text()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def _session_env(**extra: str) -> dict[str, str]:
    """This test session's own servers (embedded or external), as a host of a multi-host
    installation would have them, with `extra` on top."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "QUEUE_WORKERS": "1", **extra}


def test_web_only_and_worker_only_together_are_refused():
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "runportal", "--web-only", "--worker-only"],
        env=_session_env(), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--web-only and --worker-only exclude each other" in result.stderr


@pytest.fixture
def empty_database(db, django_db_blocker):
    """A fresh, unmigrated metadata database on the session's server."""
    from django.conf import settings
    from django.db import connection

    name = f"{connection.settings_dict['NAME']}_multihost"
    dsn = {**settings.DATABASES["default"]}
    conninfo = {"host": dsn["HOST"], "user": dsn["USER"], "password": dsn["PASSWORD"] or None, "dbname": "postgres"}
    if dsn.get("PORT"):
        conninfo["port"] = dsn["PORT"]
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name, {k: v for k, v in {**conninfo, "dbname": name}.items() if v}
    with psycopg.connect(**{k: v for k, v in conninfo.items() if v}, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_worker_only_refuses_an_unmigrated_database(empty_database):
    name, _ = empty_database
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "runportal", "--worker-only", "--wait-for-migrations", "0"],
        env=_session_env(DATABASE_NAME=name), cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "migration(s) not applied yet" in result.stderr and "runportal --web-only" in result.stderr


def test_a_worker_host_waits_for_the_web_host_to_migrate_then_beats(empty_database, tmp_path):
    """Two hosts' commands on one database: the worker side starts first and waits, the web
    side migrates and serves, then the worker's cluster comes up under its name."""
    name, conninfo = empty_database
    env = _session_env(DATABASE_NAME=name, PORTAL_WORKER_NAME="host-two", PORT=str(free_port()))
    logs = {side: open(tmp_path / f"{side}.log", "w+") for side in ("worker", "web")}  # noqa: SIM115
    processes = {}
    try:
        processes["worker"] = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runportal", "--worker-only"],
            env=env, cwd=ROOT, stdout=logs["worker"], stderr=subprocess.STDOUT,
        )  # fmt: skip
        worker_log = tmp_path / "worker.log"
        wait_until(lambda: "waiting up to 300 s" in worker_log.read_text(), "the worker to wait", timeout=60)
        processes["web"] = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runportal", "--web-only"],
            env=env, cwd=ROOT, stdout=logs["web"], stderr=subprocess.STDOUT,
        )  # fmt: skip

        def answers() -> bool:
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{env['PORT']}/login/", timeout=2).status == 200
            except OSError:
                return False

        wait_until(answers, lambda: f"the web side to serve:\n{(tmp_path / 'web.log').read_text()[-3000:]}", 240)

        def beating() -> bool:
            with psycopg.connect(**conninfo) as conn:
                return bool(conn.execute("SELECT 1 FROM runs_worker WHERE name = 'host-two'").fetchone())

        wait_until(beating, lambda: f"the worker to beat:\n{worker_log.read_text()[-3000:]}", timeout=120)
        assert "Q Cluster" not in (tmp_path / "web.log").read_text()  # the web host runs no cluster
        assert "Queue worker host-two is up." in worker_log.read_text()
        for side in ("worker", "web"):
            processes[side].send_signal(signal.SIGINT)
            assert processes[side].wait(60) == 0, (tmp_path / f"{side}.log").read_text()[-3000:]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        for log in logs.values():
            log.close()


def test_the_web_side_serves_https_with_the_given_certificate(transactional_db, tmp_path, operator):
    """TLS_CERT_FILE and TLS_KEY_FILE: gunicorn speaks HTTPS, verified against the CA that
    signed the pair, the start line names the https URL, and so do the API's links (no
    PORTAL_BASE_URL: it follows the --port given and TLS)."""
    from django.db import connection

    from accounts.models import ApiToken
    from runs.models import Run
    from tests.hosts import Host
    from tests.tls import make_tls

    tls = make_tls(tmp_path / "tls")
    env = _session_env(DATABASE_NAME=connection.settings_dict["NAME"], SSL_CERT_FILE=str(tls.ca), **tls.server_env())
    env.pop("PORTAL_BASE_URL", None)
    web = Host("web", "web", tmp_path, env).start()
    try:
        trust = ssl.create_default_context(cafile=tls.ca)
        with urllib.request.urlopen(f"https://127.0.0.1:{web.port}/healthz", timeout=10, context=trust) as answer:
            assert (answer.status, json.loads(answer.read())) == (200, {"status": "ok"})
        assert f"Transformation Portal is up: https://127.0.0.1:{web.port}/" in web.log_text()
        run = Run.objects.create(project="inventory_transforms", command="build", timeout_seconds=60, source="api")
        token = ApiToken.issue(operator, "tests", 1)[1]
        run_url = f"https://127.0.0.1:{web.port}/api/v2/accounts/1/runs/{run.pk}/"
        request = urllib.request.Request(run_url, headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=10, context=trust) as answer:
            assert json.loads(answer.read())["data"]["href"] == f"https://127.0.0.1:{web.port}/runs/{run.pk}/"
        system_store_only = ssl.create_default_context()
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(f"https://127.0.0.1:{web.port}/healthz", timeout=10, context=system_store_only)
    finally:
        web.stop()


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ({"TLS_CERT_FILE": "cert"}, "TLS_CERT_FILE and TLS_KEY_FILE go together"),
        ({"TLS_CERT_FILE": "cert", "TLS_KEY_FILE": "missing"}, "TLS_KEY_FILE="),
        ({"TLS_CERT_FILE": "key", "TLS_KEY_FILE": "key"}, "are not a PEM certificate and its key"),
    ],
)
def test_a_wrong_tls_setting_stops_the_start_naming_it(tmp_path, given, refusal):
    from tests.tls import make_tls

    tls = make_tls(tmp_path)
    files = {"cert": str(tls.cert), "key": str(tls.key), "missing": str(tmp_path / "missing.pem")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "runportal", "--web-only"],
        env=_session_env(**{name: files[value] for name, value in given.items()}),
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert refusal in result.stderr
