from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str | None) -> subprocess.CompletedProcess:
    """manage.py in a fresh process with this environment plus `env` (None removes a variable)."""
    dropped = ("DEBUG", "SECRET_KEY", "PORTAL_ENV", "DJANGO_ALLOW_ASYNC_UNSAFE")  # the last is set by e2e tests
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    merged = {k: v for k, v in {**base, **env}.items() if v is not None}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=merged, capture_output=True, text=True, cwd=ROOT
    )


def _external_db() -> dict[str, str]:
    """This test session's own metadata database (the test database, on the embedded or the
    machine's server) as DATABASE_URL, so a production-profile subprocess never starts the
    embedded server and sees the rows the test made."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    url = f"postgres://{auth}@{quote(db['HOST'], safe='')}{port}/{db['NAME']}"
    return {"DATABASE_URL": url, "WAREHOUSE_URL": url}


def test_production_profile_passes_deploy_checks(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        PORTAL_ENV="production",
        SECRET_KEY="x" * 20 + "a-long-random-production-secret-0123456789",
        ALLOWED_HOSTS="portal.example.com",
        PORTAL_DATA_DIR=str(tmp_path),
        **_external_db(),
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
    assert not (tmp_path / "postgres").exists()  # DATABASE_URL set: pgserver never started


def test_production_requires_a_secret_key(tmp_path):
    result = manage("check", PORTAL_ENV="production", PORTAL_DATA_DIR=str(tmp_path), **_external_db())
    assert result.returncode != 0
    assert "SECRET_KEY (or SECRET_KEY_FILE) is required in production" in result.stderr


def test_bad_environment_value_fails_loudly():
    result = manage("check", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_external_database_without_warehouse_is_refused(tmp_path):
    env = {"DATABASE_URL": "postgres://u@127.0.0.1:1/x", "PORTAL_DATA_DIR": str(tmp_path), "WAREHOUSE_URL": ""}
    result = manage("check", **env)
    assert result.returncode != 0
    assert "the warehouse must be too" in result.stderr


def test_importing_settings_starts_nothing_and_writes_nothing():
    """Settings only read: the embedded default computes the server's socket without
    starting it, and no file (secret key, database) appears under the data directory."""
    import psutil

    data_dir = Path(tempfile.mkdtemp(prefix="st", dir="/tmp"))  # short: the socket path must fit
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "WAREHOUSE_URL", "DBT_HOST")}
        env.update(PORTAL_DATA_DIR=str(data_dir / "data"))
        code = "import transformation_portal.settings as s; print(s.DATABASES['default']['HOST'])"
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(data_dir / "data" / "postgres")
        assert not (data_dir / "data").exists()  # not even the directory
        commands = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
        assert [c for c in commands if str(data_dir) in c] == []  # no postgres on that data dir
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.mark.django_db(transaction=True)
def test_deploy_check_fails_while_a_demo_password_works(tmp_path):
    from django.contrib.auth.models import User

    production = {
        "PORTAL_ENV": "production",
        "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-0123456789",
        "ALLOWED_HOSTS": "portal.example.com",
        "PORTAL_DATA_DIR": str(tmp_path),
        **_external_db(),
    }
    user = User.objects.create_user("admin", password="admin-demo")
    result = manage("check", "--deploy", **production)
    assert result.returncode != 0
    assert "user 'admin' logs in with the demo password 'admin-demo'" in result.stderr
    user.set_password("a-real-password-0987")
    user.save()
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production)
    assert result.returncode == 0, result.stderr


def test_demo_users_only_on_the_embedded_database(tmp_path):
    external = {**_external_db(), "PORTAL_DATA_DIR": str(tmp_path)}
    result = manage("create_demo_users", **external)
    assert result.returncode != 0
    assert "demo users are only created on the embedded database" in result.stderr
    code = "from django.conf import settings; print(settings.DEBUG)"
    assert manage("shell", "-c", code, **external).stdout.split()[-1] == "False"  # no PORTAL_ENV: still no debug pages


def test_connection_strings_are_masked_in_logs(tmp_path):
    secret_url = "postgres://portal:s3cr3t-pw@db.internal:5432/portal"
    code = (
        "import logging; from django.conf import settings as s; "
        "logging.getLogger('portal').error('db %s wh %s', s.DATABASE_URL, s.WAREHOUSE_CONNINFO)"
    )
    result = manage(
        "shell", "-c", code, DATABASE_URL=secret_url, WAREHOUSE_URL=secret_url, PORTAL_DATA_DIR=str(tmp_path)
    )
    assert "db postgres://portal:********@db.internal:5432/portal" in result.stderr, result.stderr
    assert "s3cr3t" not in result.stderr


def _configure_secret_connections(settings) -> None:
    import uuid

    secret = uuid.uuid4().hex  # in no source line or local variable the debug page shows
    settings.DATABASE_URL = settings.REDIS_URL = f"postgres://portal:{secret}@db.internal/portal"
    settings.WAREHOUSE_CONNINFO = f"host=wh user=dbt password={secret} dbname=analytics"
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": f"redis://:{secret}@redis:6379/0"}


def test_connection_strings_are_masked_on_debug_pages(rf, settings):
    import sys

    from django.views.debug import technical_500_response

    settings.DEBUG = True
    _configure_secret_connections(settings)
    conninfo = settings.WAREHOUSE_CONNINFO  # a local variable of the failing frame
    try:
        raise RuntimeError(f"could not connect with {conninfo}")
    except RuntimeError:
        html = technical_500_response(rf.get("/"), *sys.exc_info()).content.decode()
    del conninfo
    secret = settings.DATABASE_URL.split(":")[2].split("@")[0]
    assert secret not in html
    assert "DATABASE_URL" in html and "password=********" in html  # named, password hidden


@pytest.mark.parametrize("name", ["two words", "host:1", "-leading-dash", "x" * 101])
def test_a_bad_worker_name_stops_the_start_naming_it(name):
    result = manage("check", PORTAL_WORKER_NAME=name)
    assert result.returncode != 0
    assert f"PORTAL_WORKER_NAME={name!r}" in result.stderr


def test_the_default_worker_name_is_the_host_name_and_the_boot_id():
    result = manage("shell", "-c", "from django.conf import settings; print(settings.PORTAL_WORKER_NAME)")
    assert result.returncode == 0, result.stderr
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    assert result.stdout.splitlines()[-1] == f"{socket.gethostname()}-{boot_id[:8]}"


def portal_base_url(**env: str) -> str:
    """PORTAL_BASE_URL as a fresh process computes it from `env` (nothing else of the kind set)."""
    unset = dict.fromkeys(("PORTAL_BASE_URL", "HOST", "PORT", "TLS_CERT_FILE", "TLS_KEY_FILE"))
    code = "from django.conf import settings; print(settings.PORTAL_BASE_URL)"
    result = manage("shell", "-c", code, **{**unset, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


@pytest.mark.parametrize(
    ("env", "base_url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"PORT": "9000"}, "http://127.0.0.1:9000"),
        ({"HOST": "portal.internal", "PORT": "80"}, "http://portal.internal"),
        ({"HOST": "::1", "PORT": "8080"}, "http://[::1]:8080"),
        ({"PORTAL_BASE_URL": "https://portal.example.com/", "PORT": "9000"}, "https://portal.example.com"),
    ],
)
def test_links_point_at_where_the_portal_listens(env, base_url):
    assert portal_base_url(**env) == base_url


@pytest.mark.parametrize("every_address", ["0.0.0.0", "::"])  # noqa: S104 - the Dockerfile's HOST
def test_links_name_the_machine_when_the_portal_listens_on_every_address(every_address):
    assert portal_base_url(HOST=every_address, PORT="8001") == f"http://{socket.getfqdn()}:8001"


def test_links_are_https_when_the_portal_serves_tls(tmp_path):
    from tests.tls import make_tls

    tls = make_tls(tmp_path)
    assert portal_base_url(PORT="8443", **tls.server_env()) == "https://127.0.0.1:8443"
    assert portal_base_url(HOST="localhost", PORT="443", **tls.server_env()) == "https://localhost"


def proxy_settings(**env: str) -> tuple[str, str]:
    """BEHIND_TLS_PROXY and TRUSTED_PROXY_COUNT as a fresh production process reads them."""
    unset = dict.fromkeys(("BEHIND_TLS_PROXY", "TRUSTED_PROXY_COUNT", "TLS_CERT_FILE", "TLS_KEY_FILE"))
    code = "from django.conf import settings; print(settings.BEHIND_TLS_PROXY, settings.TRUSTED_PROXY_COUNT)"
    production = {"PORTAL_ENV": "production", "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "portal.example.com"}
    result = manage("shell", "-c", code, **{**unset, **production, **_external_db(), **env})
    assert result.returncode == 0, result.stderr
    behind, count = result.stdout.split()[-2:]
    return behind, count


def test_a_portal_serving_https_itself_trusts_no_forwarded_for(tmp_path):
    """Clients reach gunicorn directly when it serves TLS: a X-Forwarded-For they write
    themselves must not pick the address the login lockout and the bad-token throttle count."""
    from tests.tls import make_tls

    tls = make_tls(tmp_path)
    assert proxy_settings(**tls.server_env()) == ("False", "0")
    assert proxy_settings() == ("True", "1")  # behind nginx, the production default


def test_deploy_check_fails_on_tls_served_itself_with_trusted_proxies(tmp_path):
    from tests.tls import make_tls

    tls = make_tls(tmp_path)
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        PORTAL_ENV="production", SECRET_KEY="x" * 20 + "a-long-random-production-secret-0123456789",
        ALLOWED_HOSTS="portal.example.com", PORTAL_DATA_DIR=str(tmp_path), TRUSTED_PROXY_COUNT="1",
        **tls.server_env(), **_external_db(),
    )  # fmt: skip
    assert result.returncode != 0
    assert "TRUSTED_PROXY_COUNT" in result.stderr and "TLS_CERT_FILE" in result.stderr
