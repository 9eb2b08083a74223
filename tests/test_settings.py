from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    dropped = ("DEBUG", "SECRET_KEY", "PORTAL_ENV", "DJANGO_ALLOW_ASYNC_UNSAFE")  # the last is set by e2e tests
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env={**base, **env}, capture_output=True, text=True, cwd=ROOT
    )


def _external_db() -> dict[str, str]:
    # Production never starts the embedded server: point at the machine's database URL if
    # given, else at the embedded one by URL (the check does not need to connect).
    from django.conf import settings

    db = settings.DATABASES["default"]
    url = os.environ.get("DATABASE_URL") or f"postgres://{db['USER']}@{quote(db['HOST'], safe='')}/{db['NAME']}"
    return {"DATABASE_URL": url, "WAREHOUSE_URL": os.environ.get("WAREHOUSE_URL", url)}


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
