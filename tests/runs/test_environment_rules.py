"""Issue 17, items 1, 2, 5 and 9: an environment's connection is an admin's (host, port, user,
dbname, password_env, env_vars); its password comes only from a variable meant for it, its
env_vars only from the project's own prefix; no worker secret ever leaves for a host of an
operator's choosing. The reproduction: a fake PostgreSQL server on loopback that asks for a
cleartext password and records every byte it receives."""

from __future__ import annotations

import socket
import threading

import psycopg
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import ApiToken
from audit.models import AuditEvent
from kernel.errors import RequestError
from runs.environments import PROJECT_VARIABLE_PREFIX, create_environment
from runs.jobs import create_job, trigger_job
from runs.models import Environment, Run, RunState
from runs.services import trigger_run
from runs.worker import execute_run
from tests.runs.conftest import env_probe_row, wait_final, wait_for

pytestmark = pytest.mark.usefixtures("transactional_db", "dbt_projects_dir")

SECRET_KEY = "forge-tasks-with-this-secret-key-4711"
DATABASE_PASSWORD = "metadata-db-password-4711"
AWS_SECRET = "aws-secret-access-key-4711"
WAREHOUSE_PASSWORD = "portal-warehouse-password-4711"
SECRETS = (SECRET_KEY, DATABASE_PASSWORD, AWS_SECRET, WAREHOUSE_PASSWORD)
_SSL_OR_GSS_REQUEST = {80877103, 80877104}


class FakePostgres:
    """A PostgreSQL server as far as a client can tell: it declines SSL and GSS encryption,
    answers the startup message with AuthenticationCleartextPassword, keeps every byte that
    arrives (so the password in clear), then refuses the login."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = socket.create_server((host, port))
        self.host, self.port = self.server.getsockname()[:2]
        self.received = bytearray()
        self.connections = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            with conn:
                self.connections += 1
                try:
                    self.talk(conn)
                except (OSError, EOFError):
                    pass

    def read(self, conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        self.received += data
        return data

    def message(self, conn: socket.socket, tagged: bool) -> bytes:
        tag = self.read(conn, 1) if tagged else b""
        length = int.from_bytes(self.read(conn, 4), "big")
        return tag + self.read(conn, length - 4)

    def talk(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        while int.from_bytes(self.message(conn, tagged=False)[:4], "big") in _SSL_OR_GSS_REQUEST:
            conn.sendall(b"N")
        conn.sendall(b"R" + (8).to_bytes(4, "big") + (3).to_bytes(4, "big"))  # cleartext password, please
        self.message(conn, tagged=True)  # the PasswordMessage
        error = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
        conn.sendall(b"E" + (len(error) + 4).to_bytes(4, "big") + error)

    def leaked(self) -> list[str]:
        return [secret for secret in SECRETS if secret.encode() in self.received]

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def listener():
    server = FakePostgres()
    yield server
    server.close()


@pytest.fixture
def worker_secrets(monkeypatch):
    """The worker's own secrets, as a deployment sets them."""
    monkeypatch.setenv("SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("DATABASE_URL", f"postgres://portal:{DATABASE_PASSWORD}@db/portal")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setitem(settings.WAREHOUSE, "password", WAREHOUSE_PASSWORD)


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user, 'test', 1)[1]}")
    return client


def run_on(environment: Environment, operator) -> Run:
    """A job on `environment` run to its end by the worker's code, with real dbt."""
    job = create_job(
        actor=operator, source="api", project="chain", name=f"on {environment.name}", steps=["dbt run -s a"],
        environment=environment.pk,
    )  # fmt: skip
    run = trigger_job(job, actor=operator, source="api")
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def old_row(**fields) -> Environment:
    """An environment stored before the rules existed (no service checked it)."""
    return Environment.objects.create(project="chain", **fields)


# --- the reproduction -------------------------------------------------------------------
@pytest.mark.parametrize("variable", ["SECRET_KEY", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY"])
def test_no_token_sends_a_worker_secret_to_a_host_of_its_choosing(
    listener, worker_secrets, operator, admin_user, variable
):
    body = {"project": "chain", "name": "leak", "host": "127.0.0.1", "port": listener.port, "password_env": variable}
    as_operator = client_for(operator).post("/api/v1/environments/", body, format="json")
    assert as_operator.status_code == 403 and as_operator.json()["field"] == "host", as_operator.content
    as_admin = client_for(admin_user).post("/api/v1/environments/", body, format="json")
    assert as_admin.status_code == 400 and as_admin.json()["field"] == "password_env", as_admin.content
    assert not Environment.objects.filter(name="leak").exists()

    # a row stored before the fix: its run refuses it before dbt connects anywhere
    run = run_on(old_row(name="leak", host="127.0.0.1", port=listener.port, password_env=variable), operator)
    assert run.state == RunState.ERROR and "password_env" in run.reason and variable in run.reason, run.reason
    assert listener.leaked() == [] and listener.connections == 0


def test_env_vars_cannot_send_the_warehouse_password_elsewhere(worker_secrets, operator, admin_user):
    """PGHOSTADDR on an environment with a blank host: libpq would connect there, with the
    portal's own warehouse password."""
    listener = FakePostgres("127.0.0.2", int(settings.WAREHOUSE["port"]))
    try:
        body = {"project": "chain", "name": "redirect", "env_vars": {"PGHOSTADDR": "127.0.0.2"}}
        as_operator = client_for(operator).post("/api/v1/environments/", body, format="json")
        assert as_operator.status_code == 403 and as_operator.json()["field"] == "env_vars"
        as_admin = client_for(admin_user).post("/api/v1/environments/", body, format="json")
        assert as_admin.status_code == 400 and as_admin.json()["field"] == "env_vars", as_admin.content
        assert "PGHOSTADDR" in as_admin.json()["detail"]

        run = run_on(old_row(name="redirect", env_vars={"PGHOSTADDR": "127.0.0.2"}), operator)
        assert run.state == RunState.ERROR and "PGHOSTADDR" in run.reason, run.reason
        assert listener.leaked() == [] and listener.connections == 0
    finally:
        listener.close()


def test_the_listener_hears_the_password_an_admin_meant_for_it(listener, operator, admin_user, monkeypatch):
    """The reproduction's control: a variable meant for a password reaches the host the
    admin named, so the listener above would have heard a leak."""
    monkeypatch.setenv("DBT_ENV_SECRET_CHAIN_PW", "meant-for-this-host")
    body = {
        "project": "chain", "name": "remote", "host": "127.0.0.1", "port": listener.port,
        "password_env": "DBT_ENV_SECRET_CHAIN_PW",
    }  # fmt: skip
    created = client_for(admin_user).post("/api/v1/environments/", body, format="json")
    assert created.status_code == 201, created.content
    run = run_on(Environment.objects.get(pk=created.json()["id"]), operator)
    assert run.state == RunState.ERROR and listener.connections >= 1
    assert b"meant-for-this-host" in listener.received


# --- who changes a connection ------------------------------------------------------------
def test_operators_keep_the_portal_warehouse_environments_and_admins_own_connections(operator, admin_user):
    as_operator, as_admin = client_for(operator), client_for(admin_user)
    created = as_operator.post(
        "/api/v1/environments/",
        {"project": "chain", "name": "ci", "target_name": "ci", "schema": "ci", "threads": 2},
        format="json",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert as_operator.patch(f"/api/v1/environments/{pk}/", {"schema": "ci2", "threads": 3}).status_code == 200
    for field, value in [("host", "db.example.com"), ("port", 6543), ("user", "u"), ("dbname", "d"),
                         ("password_env", "DBT_ENV_SECRET_X"), ("env_vars", {"DBT_VAR_TEAM": "x"})]:  # fmt: skip
        refused = as_operator.patch(f"/api/v1/environments/{pk}/", {field: value}, format="json")
        assert refused.status_code == 403 and refused.json()["field"] == field, refused.content
    connection = {"host": "db.example.com", "port": 6543, "password_env": "DBT_ENV_SECRET_X"}
    assert as_admin.patch(f"/api/v1/environments/{pk}/", connection, format="json").status_code == 200
    # the operator still edits the rest, and may no longer delete it
    assert as_operator.patch(f"/api/v1/environments/{pk}/", {"threads": 5}, format="json").status_code == 200
    assert as_operator.delete(f"/api/v1/environments/{pk}/").status_code == 403

    environment = Environment.objects.get(pk=pk)
    assert (environment.host, environment.port, environment.schema, environment.threads) == (
        "db.example.com", 6543, "ci2", 5,
    )  # fmt: skip
    updates = AuditEvent.objects.filter(action="environment.update", target_id=str(pk)).order_by("id")
    by_admin = updates.get(actor=admin_user)
    assert (by_admin.before["host"], by_admin.after["host"]) == ("", "db.example.com")
    assert (by_admin.before["password_env"], by_admin.after["password_env"]) == ("", "DBT_ENV_SECRET_X")
    assert updates.count() == 3  # the refused ones changed nothing and left no row


def test_the_environment_page_refuses_an_operators_connection(client, operator, admin_user):
    environment = create_environment(actor=operator, source="web", project="chain", name="ci")
    client.force_login(operator)
    page = client.get(f"/jobs/environments/{environment.pk}/").content.decode()
    assert "Admins only" in page
    form = {"name": "ci", "target_name": "dev", "threads": "4", "host": "evil.example.com"}
    response = client.post(f"/jobs/environments/{environment.pk}/", form)
    assert response.status_code == 400 and "only an admin may set" in response.content.decode()
    response = client.post("/jobs/environments/", {**form, "project": "chain", "name": "other"})
    assert response.status_code == 400 and "only an admin may set" in response.content.decode()
    environment.refresh_from_db()
    assert environment.host == "" and not Environment.objects.filter(name="other").exists()

    client.force_login(admin_user)
    assert client.post(f"/jobs/environments/{environment.pk}/", form).status_code == 302
    environment.refresh_from_db()
    assert environment.host == "evil.example.com"


def test_the_deploy_check_names_environments_stored_before_the_rules(admin_user):
    from django.core.checks import run_checks

    old_row(name="leak", host="evil.example.com", password_env="SECRET_KEY")
    old_row(name="fine", password_env="DBT_ENV_SECRET_FINE", env_vars={"DBT_VAR_TEAM": "x"})
    warnings = [w for w in run_checks(include_deployment_checks=True) if w.id == "runs.W001"]
    assert [w.msg for w in warnings] == [
        "environment 'leak' of chain: password_env may not name SECRET_KEY, one of the portal's own variables: "
        "name a DBT_ENV_SECRET_* one"
    ]


# --- which variables ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "AWS_SECRET_ACCESS_KEY", "METRICS_TOKEN", "EMAIL_HOST_PASSWORD",
     "WAREHOUSE_URL", "DBT_PASSWORD", "PROD_DB_PASSWORD"],
)  # fmt: skip
def test_a_password_comes_only_from_a_variable_meant_for_one(admin_user, name):
    with pytest.raises(RequestError, match="DBT_ENV_SECRET_") as refused:
        create_environment(actor=admin_user, source="api", project="chain", name="p", host="h", password_env=name)
    assert refused.value.field == "password_env" and refused.value.status == 400
    assert not Environment.objects.exists()


def test_the_password_allowlist_names_more_but_never_a_portal_setting(admin_user, settings):
    settings.ENVIRONMENT_PASSWORD_VARIABLES = ["PROD_DB_PASSWORD", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY"]
    create_environment(actor=admin_user, source="api", project="chain", name="p", password_env="PROD_DB_PASSWORD")
    for name in ("SECRET_KEY", "AWS_SECRET_ACCESS_KEY"):
        with pytest.raises(RequestError, match="the portal's own") as refused:
            create_environment(actor=admin_user, source="api", project="chain", name="q", password_env=name)
        assert refused.value.field == "password_env"


@pytest.mark.parametrize(
    "name",
    ["PGHOSTADDR", "PGPASSWORD", "PGSERVICEFILE", "DBT_SEED_SCHEMA", "DBT_TARGET_PATH", "DBT_ENV_SECRET_PASSWORD",
     "DBT_ENV_CUSTOM_ENV_TEAM", "DBT_HOST", "PYTHONPATH", "PYTHONSTARTUP", "LD_PRELOAD", "PATH", "HOME",
     "SSL_CERT_FILE", "GIT_SSH_COMMAND", "HTTPS_PROXY", "TEAM"],
)  # fmt: skip
def test_env_vars_take_only_the_projects_prefix(admin_user, name):
    with pytest.raises(RequestError, match=PROJECT_VARIABLE_PREFIX) as refused:
        create_environment(actor=admin_user, source="api", project="chain", name="p", env_vars={name: "x"})
    assert refused.value.field == "env_vars" and name in refused.value.message
    assert not Environment.objects.exists()


@pytest.mark.parametrize(
    "fields", [{"env_vars": {"DBT_VAR_TEAM\n": "x"}}, {"name": "p\n"}, {"dbname": "d\n"}, {"schema": "serving"}]
)
def test_a_trailing_newline_is_no_name_and_a_protected_schema_no_schema(admin_user, fields):
    with pytest.raises(RequestError) as refused:
        create_environment(actor=admin_user, source="api", project="chain", **{"name": "p", **fields})
    assert refused.value.field == next(iter(fields)) and not Environment.objects.exists()


def test_no_variable_dbt_reads_has_the_projects_prefix():
    """dbt's own variables (its flags, DBT_ENGINE_*, DBT_ENV_SECRET/PRIVATE/CUSTOM_ENV_*)
    are none of the project's: a newer dbt that read one would fail here."""
    from dbt.cli.main import dbtRunner  # noqa: F401 - dbt.env_vars imports in a cycle from here only
    from dbt.env_vars import KNOWN_ENGINE_ENV_VARS
    from dbt_common.constants import ENGINE_ENV_PREFIX, PRIVATE_ENV_PREFIX, SECRET_ENV_PREFIX
    from dbt_common.events.functions import _METADATA_ENV_PREFIX

    names = {v.name for v in KNOWN_ENGINE_ENV_VARS} | {v.old_name for v in KNOWN_ENGINE_ENV_VARS}
    prefixes = (ENGINE_ENV_PREFIX, PRIVATE_ENV_PREFIX, SECRET_ENV_PREFIX, _METADATA_ENV_PREFIX)
    assert not [name for name in names if name and name.startswith(PROJECT_VARIABLE_PREFIX)]
    assert not [prefix for prefix in prefixes if PROJECT_VARIABLE_PREFIX.startswith(prefix)]


def test_a_project_variable_reaches_dbt_and_cannot_steer_it(admin_user, operator, monkeypatch, warehouse_conninfo):
    """The child's environment: the project's variables first, then the worker's allowlist and
    the portal's DBT_*, so nothing an environment sets overrides them."""
    monkeypatch.setenv("PROBE_DECLARED", "from-the-worker")
    monkeypatch.setitem(settings.DBT_ENV, "PROBE_DECLARED", "from-the-worker")
    environment = create_environment(
        actor=admin_user, source="api", project="envprobe", name="probe", env_vars={"DBT_VAR_PROBE": "from-env"},
    )  # fmt: skip
    job = create_job(actor=operator, source="api", project="envprobe", name="p", steps=["dbt run"],
                     environment=environment.pk)  # fmt: skip
    run = trigger_job(job, actor=operator, source="api")
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.SUCCESS, run.reason
    row = env_probe_row(warehouse_conninfo, "declared, project_var")
    assert row == ("from-the-worker", "from-env")


# --- item 2: where seeds land ------------------------------------------------------------
def test_no_environment_chooses_where_seeds_land(admin_user, operator, warehouse_conninfo):
    with pytest.raises(RequestError) as refused:
        create_environment(
            actor=admin_user, source="api", project="inventory_transforms", name="s",
            env_vars={"DBT_SEED_SCHEMA": "hijacked_seeds"},
        )  # fmt: skip
    assert refused.value.field == "env_vars"
    stored = Environment.objects.create(
        project="inventory_transforms", name="s", env_vars={"DBT_SEED_SCHEMA": "hijacked_seeds"}
    )
    job = create_job(actor=operator, source="api", project="inventory_transforms", name="seed",
                     steps=["dbt seed"], environment=stored.pk)  # fmt: skip
    run = trigger_job(job, actor=operator, source="api")
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.ERROR and "DBT_SEED_SCHEMA" in run.reason, run.reason
    with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname LIKE %s", ["%hijacked_seeds"]).fetchone()
    assert found is None


# --- item 5: env var values below operators ----------------------------------------------
def test_viewers_see_env_var_names_not_values_and_the_audit_keeps_names(viewer, operator, admin_user, client):
    environment = create_environment(
        actor=admin_user, source="api", project="chain", name="p", env_vars={"DBT_VAR_TOKEN": "value-4711"}
    )
    as_viewer = client_for(viewer).get(f"/api/v1/environments/{environment.pk}/").json()
    assert as_viewer["env_vars"] == {"DBT_VAR_TOKEN": "…"}
    listed = client_for(viewer).get("/api/v1/environments/").json()
    assert "value-4711" not in str(listed)
    as_operator = client_for(operator).get(f"/api/v1/environments/{environment.pk}/").json()
    assert as_operator["env_vars"] == {"DBT_VAR_TOKEN": "value-4711"}
    client.force_login(viewer)
    assert "value-4711" not in client.get("/jobs/environments/").content.decode()
    (created,) = AuditEvent.objects.filter(action="environment.create")
    assert created.after["env_vars"] == ["DBT_VAR_TOKEN"]
    assert "value-4711" not in client.get("/api/v1/audit/").content.decode()
    viewer.is_staff = True
    viewer.save()
    change_page = client.get(f"/admin/runs/environment/{environment.pk}/change/")
    assert change_page.status_code == 200 and "DBT_VAR_TOKEN" in change_page.content.decode()
    assert "value-4711" not in change_page.content.decode()


# --- item 3: the write lock keys on where dbt writes -------------------------------------
@pytest.fixture
def gated(warehouse_conninfo):
    """sleepy's gated model runs until this connection lets go of advisory lock 4242."""
    gate = psycopg.connect(warehouse_conninfo, autocommit=True)
    gate.execute("SELECT pg_advisory_lock(4242)")
    yield gate
    gate.close()


def start_gated(operator, **fields) -> Run:
    run = trigger_run(project="sleepy", command="run", select="gated", actor=operator, source="api", **fields)
    return wait_for(run, lambda r: r.node_results.filter(unique_id="model.sleepy.gated", status="running").exists())


def test_runs_with_other_target_names_on_one_schema_write_one_at_a_time(runs_cluster, gated, operator):
    first = start_gated(operator, target="b")
    second = trigger_run(project="sleepy", command="run", select="fast", target="c", actor=operator, source="api")
    second = wait_for(second, lambda r: f"waiting for run #{first.pk}" in r.reason or r.is_final)
    assert not second.is_final, "the second write must wait for the first"
    gated.close()
    first, second = wait_final(first), wait_final(second)
    assert first.state == second.state == RunState.SUCCESS
    assert first.finished_at < second.finished_at


def test_runs_writing_other_schemas_do_not_wait_for_each_other(runs_cluster, gated, operator):
    first = start_gated(operator)  # on the project's default environment, made by this first run
    elsewhere = create_environment(actor=operator, source="api", project="sleepy", name="b", schema="sleepy_b")
    job = create_job(
        actor=operator, source="api", project="sleepy", name="b", steps=["dbt run -s fast"], environment=elsewhere.pk
    )
    second = wait_final(trigger_job(job, actor=operator, source="api"))
    assert second.state == RunState.SUCCESS, second.reason
    first.refresh_from_db()
    assert not first.is_final and "waiting" not in second.reason
    gated.close()
    assert wait_final(first).state == RunState.SUCCESS


# --- item 9: reads never write -----------------------------------------------------------
def test_listing_a_projects_environments_writes_nothing(viewer):
    response = client_for(viewer).get("/api/v3/accounts/1/projects/")
    assert response.status_code == 200
    project = next(p for p in response.json()["data"] if p["name"] == "chain")
    listed = client_for(viewer).get(f"/api/v3/accounts/1/projects/{project['id']}/environments/")
    assert listed.status_code == 200 and listed.json()["data"] == []
    assert not Environment.objects.exists() and not AuditEvent.objects.exists()
