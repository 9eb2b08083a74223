"""The process start-up side effects that settings only describe.

`bootstrap()` is called once per process by every entry point (manage.py, wsgi.py,
asgi.py, the test session) after settings are readable and before Django connects:
it creates the data directory and static root, generates the development secret key
once, and (no DATABASE_URL) starts or attaches to the embedded PostgreSQL server and
creates its two databases. With DATABASE_URL set it never touches pgserver.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def bootstrap() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transformation_portal.settings")
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    settings.STATIC_ROOT.mkdir(exist_ok=True)
    if settings.DEV_SECRET_KEY_FILE is not None:
        settings.SECRET_KEY = _dev_secret_key(settings.DEV_SECRET_KEY_FILE)
    if settings.EMBEDDED_POSTGRES:
        _start_embedded_postgres()


def _dev_secret_key(key_file: Path) -> str:
    if not key_file.exists():
        draft = key_file.with_name(f".secret_key.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(50))
        draft.chmod(0o600)
        try:
            os.link(draft, key_file)  # atomic: of two processes starting together, one key wins
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return key_file.read_text().strip()


def _start_embedded_postgres() -> None:
    from transformation_portal import embedded_postgres

    expected = settings.DATABASES["default"]["HOST"]
    socket_dir = embedded_postgres.ensure_running(settings.EMBEDDED_PGDATA)
    if socket_dir != expected:
        raise ImproperlyConfigured(f"the embedded PostgreSQL socket is in {socket_dir}, settings expect {expected}")
    databases = (settings.DATABASES["default"]["NAME"], str(settings.WAREHOUSE["dbname"]))
    embedded_postgres.ensure_databases(socket_dir, databases)
