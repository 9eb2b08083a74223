"""What GET /readyz checks: each dependency a web process needs to serve, one function per
check, bounded (a dead or hung dependency fails the check within seconds, never hangs the
probe). A check returns a short note when it passes and raises when it fails; the view turns
the exception into a one-line error with any password masked.

CHECKS is the list the endpoint walks, in order: a new check is a function and one entry."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM

from entities.services import warehouse as warehouse_connection
from kernel.security import mask_secrets
from runs.models import Worker

# Seconds a Redis connect or reply may take before the broker check fails.
BROKER_TIMEOUT_SECONDS = 3
ERROR_MAX_CHARS = 200
# Milliseconds the metadata database may take to answer the check's query.
STATEMENT_TIMEOUT_MS = 3000


def database() -> str:
    """The metadata database answers a query (Django's own connection; connecting is bounded
    by DATABASE_CONNECT_TIMEOUT, the query by a statement timeout)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = %s", [f"{STATEMENT_TIMEOUT_MS}ms"])
        cursor.execute("SELECT 1")
    return "metadata database answers"


def warehouse() -> str:
    """The warehouse accepts a connection within WAREHOUSE_CONNECT_TIMEOUT and answers within
    WAREHOUSE_STATEMENT_TIMEOUT_MS (the timeouts the pages use)."""
    with warehouse_connection() as conn:
        conn.execute("SELECT 1")
    return "warehouse answers"


def broker() -> str:
    """The queue's broker takes work: with the ORM broker, its queue table in the metadata
    database answers (the ORM broker's own ping() is always true); with Redis, a PING."""
    queue = get_broker()
    if isinstance(queue, ORM):
        queue.queue_size()
        return "ORM broker (metadata database)"
    # django-q2 builds its Redis client without socket timeouts; the pool makes its first
    # connection at the PING, so bounding the pool's connection settings bounds the probe.
    client = queue.connection
    for option in ("socket_connect_timeout", "socket_timeout"):
        client.connection_pool.connection_kwargs.setdefault(option, BROKER_TIMEOUT_SECONDS)
    try:
        if not queue.ping():
            raise ConnectionError("Redis did not answer PING")
    finally:
        client.close()
    return "Redis broker answers PING"


def worker() -> str:
    """At least one queue worker beat within READY_WORKER_MAX_AGE seconds (runs.models.Worker)."""
    alive = list(Worker.objects.alive(settings.READY_WORKER_MAX_AGE).values_list("name", flat=True))
    if not alive:
        raise LookupError(f"no queue worker has beaten in the last {settings.READY_WORKER_MAX_AGE} s")
    return f"{len(alive)} worker(s) alive: {', '.join(alive)}"


CHECKS: list[tuple[str, Callable[[], str]]] = [
    ("database", database),
    ("warehouse", warehouse),
    ("broker", broker),
    ("worker", worker),
]


def run_checks() -> dict[str, dict[str, object]]:
    """Every check's outcome by name: {"ok": True, "detail": note} or {"ok": False, "error": text}."""
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS:
        try:
            results[name] = {"ok": True, "detail": check()}
        except Exception as exc:  # any failure of a dependency is a failing check
            results[name] = {"ok": False, "error": _one_line(exc)}
    return results


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or "no message"
    return mask_secrets(f"{type(exc).__name__}: {text}")[:ERROR_MAX_CHARS]
