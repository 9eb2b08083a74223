from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tests.conftest import wait_until


@pytest.fixture
def runs_cluster(seeded_warehouse, queue_cluster):
    return queue_cluster


def env_probe_row(conninfo: str, columns: str) -> tuple:
    """The row the envprobe project's model wrote (tests/runs/projects/envprobe): what its dbt saw."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        (schema,) = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'env_probe'"
        ).fetchone()
        return conn.execute(f'SELECT {columns} FROM "{schema}".env_probe').fetchone()


def wait_for(run, predicate, timeout: float = 120):
    """Poll the run from the database until predicate(run) holds; returns the run."""

    def holds():
        run.refresh_from_db()
        return predicate(run)

    wait_until(holds, f"run #{run.pk} (stuck in {run.state}: {run.reason})", timeout)
    return run


def wait_final(run, timeout: float = 120):
    return wait_for(run, lambda r: r.is_final, timeout)


class _Hook(BaseHTTPRequestHandler):
    received: list = []
    raw: list[bytes] = []  # each POST's body, byte for byte (what a signature covers)
    headers: list[dict[str, str]] = []  # each POST's headers
    statuses: list[int] = []  # answers in turn; the last one repeats
    hosts: list[str] = []  # the Host header of each POST
    fetched: list[str] = []  # paths asked for with GET (a followed redirect)

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        hook = type(self)
        hook.received.append(json.loads(body))
        hook.raw.append(body)
        hook.headers.append(dict(self.headers))
        hook.hosts.append(self.headers["Host"])
        status = hook.statuses[min(len(hook.received), len(hook.statuses)) - 1]
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "/internal-secret")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        type(self).fetched.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"internal answer")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """The far end of a webhook: a local HTTP server that records what it receives and
    answers with Hook.statuses in turn (200 unless a test sets them)."""

    class Hook(_Hook):
        received = []
        raw = []
        headers = []
        statuses = [200]
        hosts = []
        fetched = []

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Hook, f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


@pytest.fixture
def queued(db):
    """drain_queue for this test: with Redis the private queue outlives each test's
    transaction, so it is emptied first; calling the result returns what the test enqueued."""
    from tests.conftest import drain_queue

    drain_queue()
    return drain_queue
