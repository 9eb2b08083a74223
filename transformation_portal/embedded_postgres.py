"""The embedded PostgreSQL server (pgserver) used when DATABASE_URL is not set.

Settings compute the connection (`socket_dir()`, a pure function); every process (web,
worker, manage.py, tests) calls `ensure_running()` through `bootstrap.bootstrap()`
before it connects: the first one starts the server, the others attach to it through
its unix socket. No process stops it
on exit except `stop()`, which `manage.py runportal` calls when the portal shuts down.
A server left running by a killed portal is simply attached to on the next start; a
stale postmaster.pid (server dead) is handled by pg_ctl itself, and a start refused while
a killed server's backends still exit is retried for a few seconds.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from pathlib import Path

import psycopg
from django.core.exceptions import ImproperlyConfigured
from psycopg import sql

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
START_ATTEMPTS = 10  # one second apart
SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103  # sun_path less its NUL


def socket_dir(pgdata: Path) -> Path:
    """Where the server's unix socket is: pgserver puts it in the data directory when the
    socket's path fits the OS limit (else in a runtime directory chosen at start, which
    settings could not know before the server runs: refused here)."""
    pgdata = pgdata.resolve()
    if len(os.fsencode(pgdata / SOCKET_NAME)) > MAX_SOCKET_PATH:
        raise ImproperlyConfigured(
            f"PORTAL_DATA_DIR is too long for the embedded PostgreSQL socket ({pgdata / SOCKET_NAME} "
            f"exceeds {MAX_SOCKET_PATH} bytes): use a shorter PORTAL_DATA_DIR or set DATABASE_URL"
        )
    return pgdata


def _server(pgdata: Path):
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only the embedded mode needs it

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata.resolve()
    attempt = 1
    while True:
        cached = pgserver.PostgresServer._instances.get(pgdata)
        if cached is not None and not _running(cached):
            del pgserver.PostgresServer._instances[pgdata]  # stopped, killed or failed since: start anew
        try:
            # cleanup_mode=None: exiting processes never stop the shared server.
            return pgserver.get_server(pgdata, cleanup_mode=None)
        except Exception as error:
            # e.g. "pre-existing shared memory block is still in use": a killed server's
            # backends are still exiting. pgserver keeps the failed instance; it is dropped above.
            if attempt == START_ATTEMPTS:
                raise
            logger.warning("embedded PostgreSQL did not start (%s); retrying in 1 s", error)
            time.sleep(1)
            attempt += 1


def _running(server) -> bool:
    try:
        process = server.get_postmaster_info().process
        return process is not None and process.status() != "zombie"
    except Exception:  # never started, psutil.NoSuchProcess and friends
        return False


def ensure_running(pgdata: Path, databases: tuple[str, ...] = ()) -> str:
    """Start or attach to the server; create missing databases. Returns the socket dir."""
    server = _server(pgdata)
    socket_dir = str(server.get_postmaster_info().socket_dir)
    if databases:
        ensure_databases(socket_dir, databases)
    return socket_dir


def ensure_databases(host: str, databases: tuple[str, ...], port: int = 5432) -> None:
    with psycopg.connect(host=host, port=port, user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in databases:
            if name not in existing:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except psycopg.errors.DuplicateDatabase:
                    pass  # another process created it at the same moment


def stop(pgdata: Path) -> None:
    """Stop the server cleanly (fast shutdown: open sessions are disconnected)."""
    if not (pgdata / "postmaster.pid").exists():
        return
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made when pgserver loads

    server = _server(pgdata)
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
    logger.info("embedded PostgreSQL stopped")
