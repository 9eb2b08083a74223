"""Shared fixtures: the test databases (metadata + warehouse), the cast of users per role."""

from __future__ import annotations

import os
import tempfile
import time
import uuid

import pytest

PASSWORD = "correct-horse-battery"
# The git servers' fixtures (served_root, daemon_url, http_git, ssh_git, project_repo) for any test.
pytest_plugins = ("tests.gitservers",)


def pytest_configure(config: pytest.Config) -> None:
    # Before pytest-django loads settings: name the test databases (override to run two
    # suites side by side on one server) and keep run artifacts out of .data/.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transformation_portal.settings")
    test_db = os.environ.setdefault("TEST_DATABASE_NAME", "test_portal")
    os.environ.setdefault("WAREHOUSE_DB_NAME", f"{test_db}_warehouse")
    os.environ.setdefault("RUNS_DIR", tempfile.mkdtemp(prefix="portal-test-runs-"))
    os.environ.setdefault("GIT_CACHE_DIR", tempfile.mkdtemp(prefix="portal-test-git-"))
    # A queue of this session's own: a Redis broker keeps tasks across sessions.
    os.environ.setdefault("QUEUE_NAME", f"portal-test-{uuid.uuid4().hex[:8]}")
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under `pytest -n N`
    if worker:
        # Each xdist worker is a session of its own: its own warehouse, run directory, queue
        # and cache keys (pytest-django gives it its own test database, `<name>_gw0`).
        os.environ["WAREHOUSE_DB_NAME"] = f"{os.environ['WAREHOUSE_DB_NAME']}_{worker}"
        os.environ["RUNS_DIR"] = tempfile.mkdtemp(prefix=f"portal-test-runs-{worker}-")
        os.environ["GIT_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"portal-test-git-{worker}-")
        os.environ["QUEUE_NAME"] = f"{os.environ['QUEUE_NAME']}-{worker}"
    # The far end of the tests' webhooks listens on loopback (tests/runs/conftest.py).
    os.environ.setdefault("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    # The suite's raw data is the demo seeds, on the embedded and on an external server alike.
    os.environ.setdefault("DEMO_SEEDS_INTO_RAW", "1")
    config.pluginmanager.register(LongModulesFirst())
    from transformation_portal.bootstrap import bootstrap

    bootstrap()  # settings, embedded server and databases ready; pytest-django then sets Django up


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own starts the workers
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under `pytest -n N` this process only hands out tests: its workers start without
    DJANGO_SETTINGS_MODULE, so pytest-django leaves their settings unread until their
    pytest_configure above has given each its own databases, queue and run directory."""
    if session.config.pluginmanager.hasplugin("dsession"):
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)


# Fixtures whose tests' outcome depends on the broker: a task is put on it and a worker (or the
# test) takes it off again. With them, a test is marked `services` (docs/testing.md).
BROKER_FIXTURES = frozenset({"queue_cluster", "queue_cluster_process", "runs_cluster", "queued"})


# the session-wide queue cluster's PORTAL_WORKER_NAME
SESSION_WORKER_NAME = "session-cluster"


# Modules of a minute or more (real hosts, fuzzing, many dbt runs; `.ci/run` prints each
# module's time): they are handed out first, longest first.
LONG_MODULES = (
    "tests.test_multihost",
    "tests.dbt_cloud.test_airflow",
    "tests.dbt_cloud.test_dbt_cloud_cli",
    "tests.test_schemathesis",
    "tests.runs.test_environment_rules",
    "tests.runs.test_git_projects",
    "tests.e2e.test_columns",
    "tests.test_faults_warehouse",
    "tests.lineage.test_state_selection",
    "tests.runs.test_artifact_storage",
    "tests.test_runportal",
    "tests.runs.test_worker",
    "tests.lineage.test_selectors",
    "tests.runs.test_worker_identity",
    "tests.runs.test_jobs",
)


class LongModulesFirst:
    """Under `pytest -n` no process is left alone with minutes of work at the end."""

    @pytest.hookimpl(trylast=True)  # after pytest-django's ordering, which it keeps within modules
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        rank = {name: i for i, name in enumerate(LONG_MODULES)}
        items.sort(key=lambda item: rank.get(item.module.__name__, len(LONG_MODULES)))


@pytest.hookimpl(tryfirst=True)  # before `-m services` selects by the marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests whose outcome depends on the services CI's second pass brings (the broker, several
    hosts, the database server and the cache behind the web processes) are marked `services`:
    those that use a broker fixture, and those marked by hand. Cross-process suites run in one
    CI pass only, the one whose services they need: modules that set FIRST_PASS_ONLY (the
    minutes-long schemathesis fuzz) on the embedded PostgreSQL, modules that set
    SECOND_PASS_ONLY (the three-host proof and Apache Airflow, on the machine's PostgreSQL and Redis) with
    DATABASE_URL set. The others are deselected, with a note, not skipped."""
    for item in items:
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())) or getattr(item.module, "SECOND_PASS_ONLY", False):
            item.add_marker(pytest.mark.services)
    external = bool(os.environ.get("DATABASE_URL"))
    flag = "FIRST_PASS_ONLY" if external else "SECOND_PASS_ONLY"
    kept = [item for item in items if not getattr(item.module, flag, False)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            where = "DATABASE_URL is set" if external else "DATABASE_URL is not set"
            reporter.write_line(
                f"{where}: {len(items) - len(kept)} {flag.lower().replace('_', '-')} test(s) deselected"
            )
        items[:] = kept


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI_FORBID_SKIPS=1) a skipped test fails the run: nothing may rot silently."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI_FORBID_SKIPS") == "1" and skipped and session.exitstatus == 0:
        reporter.write_line(f"CI_FORBID_SKIPS=1: {skipped} test(s) skipped; failing the run", red=True)
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def private_queue(request, monkeypatch):
    """Unless a test asks for the queue worker (queue_cluster / queue_cluster_process), what
    it enqueues goes to a queue no worker reads: a test that runs the worker in-process or
    looks at the queue never races the session's live cluster (with Redis, a worker takes a
    task within a millisecond)."""
    if {"queue_cluster", "queue_cluster_process"} & set(request.fixturenames):
        return
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "CLUSTER_NAME", f"{Conf.PREFIX}-private")


def wait_until(condition, what: str, timeout: float = 120, interval: float = 0.1):
    """Poll condition() until it returns something truthy and return that; fail naming
    `what` (a callable is called for a message with fresh detail) if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def drain_queue() -> list[str]:
    """Take every task off this test's queue (either broker) and return their function names."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker, funcs = get_broker(), []
    while broker.queue_size():
        for _task_id, payload in broker.dequeue() or []:
            funcs.append(SignedPackage.loads(payload)["func"])
    return funcs


@pytest.fixture(scope="session", autouse=True)
def quick_password_hashing():
    """Passwords hashed with PBKDF2 at 1,000 iterations (tests/hashers.py) in the test process."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["tests.hashers.FewIterationsPBKDF2PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database may TRUNCATE the append-only audit table (transactional tests
    reset tables that way); UPDATE and DELETE stay refused. See audit migration 0002."""
    from django.db import connection

    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE \"{connection.settings_dict['NAME']}\" SET portal.audit_maintenance = 'on'")
        connection.close()


@pytest.fixture(scope="session")
def warehouse_conninfo() -> str:
    """A fresh, empty warehouse database for this test session."""
    import psycopg
    from django.conf import settings
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(settings.WAREHOUSE_CONNINFO)
    name = params["dbname"]
    assert name.startswith("test_"), f"refusing to recreate non-test warehouse {name!r}"
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return settings.WAREHOUSE_CONNINFO


@pytest.fixture(scope="session")
def warehouse_env(warehouse_conninfo) -> dict[str, str]:
    """Environment for a dbt subprocess pointed at the session's warehouse."""
    from django.conf import settings

    from dbtlib.environment import dbt_environment

    return dbt_environment(os.environ, settings.DBT_ENV)


# What data migrations create (schedules, entity types): a transactional test's flush empties
# every table, and under `pytest -n` a test may come after any other.
DATA_MIGRATIONS = (
    ("entities.migrations.0002_users_and_applications", "create"),
    ("operations.migrations.0001_dashboard", "create_refresh"),
    ("operations.migrations.0003_sla_checker_schedule", "create_checker"),
    ("runs.migrations.0008_prune_schedule", "create_prune"),
)


@pytest.fixture
def migrated_rows(db) -> None:
    """The rows a freshly migrated database has, whatever ran before (each function is idempotent)."""
    import importlib

    from django.apps import apps

    for module, function in DATA_MIGRATIONS:
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture
def roles(db):
    """The role groups (recreated: transactional tests empty every table)."""
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    from accounts.roles import sync_roles

    sync_roles(Group, Permission, ContentType)


def _make_user(username: str, role: str | None, **extra):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, **extra)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def viewer(roles):
    return _make_user("vera_viewer", "viewer")


@pytest.fixture
def operator(roles):
    return _make_user("otto_operator", "operator")


@pytest.fixture
def approver(roles):
    return _make_user("ada_approver", "approver")


@pytest.fixture
def admin_user(roles):
    return _make_user("alice_admin", "admin", is_staff=True)


@pytest.fixture
def nobody(roles):
    """Logged in, but in no role group."""
    return _make_user("nora_norole", None)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


# --- queue workers and dbt projects (appended by runs; general, reused by other apps) ----


@pytest.fixture(scope="session")
def dbt_projects_dir(tmp_path_factory):
    """A session copy of dbt_projects/ (without build output) plus the test-only projects
    under tests/*/projects/, made the portal's DBT_PROJECTS_DIR for the test process and
    for queue clusters started afterwards."""
    import shutil
    from pathlib import Path

    from django.conf import settings

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path_factory.mktemp("dbt_projects")
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "__pycache__")
    shutil.copytree(repo / "dbt_projects", root, dirs_exist_ok=True, ignore=ignore)
    for extra in sorted(repo.glob("tests/*/projects/*/dbt_project.yml")):
        shutil.copytree(extra.parent, root / extra.parent.name, ignore=ignore)
    previous = settings.DBT_PROJECTS_DIR, os.environ.get("DBT_PROJECTS_DIR")
    settings.DBT_PROJECTS_DIR = root
    os.environ["DBT_PROJECTS_DIR"] = str(root)
    yield root
    settings.DBT_PROJECTS_DIR = previous[0]
    if previous[1] is None:
        os.environ.pop("DBT_PROJECTS_DIR", None)
    else:
        os.environ["DBT_PROJECTS_DIR"] = previous[1]


@pytest.fixture(scope="session")
def queue_cluster_process(django_db_setup, django_db_blocker, dbt_projects_dir, warehouse_conninfo, tmp_path_factory):
    """A real `manage.py qcluster` on the test database (session-wide; see queue_cluster).
    Its output goes to a file named in the failure message if it does not come up."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection

    repo = Path(__file__).resolve().parents[1]
    log_file = tmp_path_factory.mktemp("qcluster") / "qcluster.log"
    # a name of its own: the default name (this host's) stays free for tests that start a
    # worker host under it, which the duplicate-name check would otherwise refuse
    env = {
        **os.environ,
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "PORTAL_WORKER_NAME": SESSION_WORKER_NAME,
        "PYTHONUNBUFFERED": "1",
    }
    with open(log_file, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(repo / "manage.py"), "qcluster"],
            cwd=repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "running" in log_file.read_text() or process.poll() is not None, "qcluster", 60)
        assert process.poll() is None
    except (AssertionError, pytest.fail.Exception):
        process.kill()
        pytest.fail(f"qcluster did not start; see {log_file}:\n{log_file.read_text()[-3000:]}")
    process.log_file = log_file
    SESSION_CLUSTER.append(process)
    yield process
    SESSION_CLUSTER.clear()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


SESSION_CLUSTER: list = []  # the session cluster's process while it runs


@pytest.fixture
def session_cluster_registered(db) -> None:
    """For tests that count live workers: once this process's session cluster runs, it beats
    into the test database, and a transactional test's flush empties its registry row until its
    next beat. Wait for that row, so it cannot appear halfway through a count."""
    from runs.models import Worker

    if SESSION_CLUSTER and SESSION_CLUSTER[0].poll() is None:
        beating = Worker.objects.alive().filter(name=SESSION_WORKER_NAME)
        wait_until(beating.exists, "the session cluster's beat", 60)


@pytest.fixture
def queue_cluster(queue_cluster_process, transactional_db):
    """A running django-q2 cluster that sees this test's committed rows (use with tests
    that need transactional_db: the cluster reads the database from another process). The
    test ends once the column lineage its runs' snapshots queued is computed: the cluster
    writing it while the test's flush truncates the tables would deadlock the flush."""
    from lineage.models import ColumnCoverage, ColumnCoverageState

    yield queue_cluster_process
    pending = ColumnCoverage.objects.filter(state=ColumnCoverageState.PENDING)
    wait_until(lambda: not pending.exists(), "the column lineage the test's runs queued", 180)


@pytest.fixture(scope="session")
def seeded_warehouse(dbt_projects_dir, warehouse_env, tmp_path_factory):
    """The session warehouse with inventory_transforms' seeds loaded (a build needs them)."""
    import subprocess

    from dbtlib.environment import DBT_EXECUTABLE

    project = dbt_projects_dir / "inventory_transforms"
    out = tmp_path_factory.mktemp("seed")
    argv = [
        DBT_EXECUTABLE,
        "seed",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(dbt_projects_dir),
        "--target-path",
        str(out / "target"),
        "--log-path",
        str(out / "logs"),
    ]
    done = subprocess.run(argv, env=warehouse_env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    return dbt_projects_dir


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory):
    """moto's standalone S3 server with a bucket (tests/s3_server.py); stopped at the end."""
    from tests.s3_server import MotoServer

    server = MotoServer("portal-artifacts", tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


def artifact_store_env(store: str, request) -> dict[str, str]:
    """The environment of an artifact storage backend: the database, or S3 on moto's server
    under a prefix of the test's own."""
    if store == "database":
        return {"ARTIFACT_STORAGE": "database"}
    return request.getfixturevalue("moto_s3").env()


@pytest.fixture(params=["database", "s3"])
def backend_env(request) -> dict[str, str]:
    return artifact_store_env(request.param, request)


@pytest.fixture
def gate(warehouse_conninfo):
    """chain's model b (tests/runs/projects/chain) fails until chain_gate.gate exists: open() makes it."""
    import psycopg

    class Gate:
        def open(self) -> None:
            with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
                conn.execute("CREATE SCHEMA IF NOT EXISTS chain_gate; CREATE TABLE IF NOT EXISTS chain_gate.gate ()")

    with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS chain_gate CASCADE")
    return Gate()
