from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest

from transformation_portal import embedded_postgres


@pytest.fixture
def pgdata():
    # A short path: the server's unix socket lives here and must stay under 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    yield root / "postgres"
    embedded_postgres.stop(root / "postgres")
    shutil.rmtree(root, ignore_errors=True)


def query(socket_dir: str, sql: str):
    with psycopg.connect(host=socket_dir, user="postgres", dbname="portal", autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else None


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def test_embedded_server_boots_is_reused_and_survives_restart_and_kill(pgdata):
    socket_dir = embedded_postgres.ensure_running(pgdata, ("portal",))
    query(socket_dir, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    first_pid = postmaster_pid(pgdata)

    # a second start attaches to the running server
    assert embedded_postgres.ensure_running(pgdata, ("portal",)) == socket_dir
    assert postmaster_pid(pgdata) == first_pid

    # a clean stop, then a start: same data
    embedded_postgres.stop(pgdata)
    with pytest.raises(psycopg.OperationalError):
        query(socket_dir, "SELECT 1")
    socket_dir = embedded_postgres.ensure_running(pgdata, ("portal",))
    assert query(socket_dir, "SELECT n FROM kept") == [(42,)]

    # a killed server leaves a stale postmaster.pid behind; the next start still works
    killed = kill_postmaster(pgdata)
    socket_dir = embedded_postgres.ensure_running(pgdata, ("portal",))
    assert postmaster_pid(pgdata) != killed
    assert query(socket_dir, "SELECT n FROM kept") == [(42,)]


def test_a_start_waits_while_a_killed_servers_backend_still_holds_its_memory(pgdata, caplog):
    socket_dir = embedded_postgres.ensure_running(pgdata, ("portal",))
    query(socket_dir, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    session = psycopg.connect(host=socket_dir, user="postgres", dbname="portal", autocommit=True)
    backend = session.info.backend_pid
    os.kill(backend, signal.SIGSTOP)  # a backend too slow to notice its postmaster died
    kill_postmaster(pgdata)
    threading.Timer(2.0, os.kill, (backend, signal.SIGCONT)).start()

    socket_dir = embedded_postgres.ensure_running(pgdata, ("portal",))
    assert query(socket_dir, "SELECT n FROM kept") == [(7,)]
    assert "embedded PostgreSQL did not start" in caplog.text  # the leftover backend was in the way
    session.close()


def kill_postmaster(pgdata: Path) -> int:
    killed = postmaster_pid(pgdata)
    os.kill(killed, signal.SIGKILL)
    for _ in range(50):
        try:  # reap it if this process happens to be its parent (it is in some sandboxes)
            os.waitpid(killed, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(killed, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            break
    assert (pgdata / "postmaster.pid").exists()
    return killed
