"""Page-side warehouse queries give up quickly, and DDL never queues readers behind it: an
unreachable warehouse leaves the pages answering with a notice; a mode change or the rules
engine's swap behind a long reader lets the other readers through and then goes ahead."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest

from entities.models import Mode
from entities.rules import engine
from tests.conftest import wait_until
from tests.entities.conftest import query
from tests.entities.helpers import move_to

pytestmark = pytest.mark.django_db

UNREACHABLE = "Warehouse unreachable: the serving views could not be read"


@pytest.fixture
def hung_warehouse(settings) -> Iterator[None]:
    """A warehouse address that accepts connections and never answers (closed after 30 s,
    so a client without a connect timeout fails instead of hanging the test for ever)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    closer = threading.Timer(30, server.close)
    closer.start()
    settings.WAREHOUSE_CONNINFO = f"host=127.0.0.1 port={server.getsockname()[1]} dbname=warehouse user=portal"
    settings.WAREHOUSE_CONNECT_TIMEOUT = 2
    yield
    closer.cancel()
    server.close()


def test_pages_answer_with_a_notice_when_the_warehouse_does_not(client, hung_warehouse, users_entity, viewer):
    client.force_login(viewer)
    for url in ("/", "/entities/", "/entities/users/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert UNREACHABLE in response.content.decode(), url
    assert "does not exist in the warehouse yet" not in client.get("/entities/users/").content.decode()


def test_pages_show_no_notice_when_the_warehouse_answers(client, warehouse, users_entity, viewer):
    client.force_login(viewer)
    for url in ("/", "/entities/", "/entities/users/"):
        assert UNREACHABLE not in client.get(url).content.decode(), url


def readers_get_through(conninfo: str, relation: str) -> tuple[threading.Thread, dict]:
    """Holds `relation` with a long reader; once DDL waits for it, a second reader (which
    would queue behind that DDL) reads with a 5 s lock_timeout; then the long reader ends."""
    outcome: dict = {}
    long_reader = psycopg.connect(conninfo)
    long_reader.execute(f"select count(*) from {relation}")
    waiting = f"select count(*) from pg_locks where not granted and relation = '{relation}'::regclass"

    def watch() -> None:
        try:
            wait_until(lambda: query(conninfo, waiting)[0][0] > 0, f"DDL waiting for {relation}", 60, 0.01)
            with psycopg.connect(conninfo, options="-c lock_timeout=5000") as reader:
                outcome["rows"] = reader.execute(f"select count(*) from {relation}").fetchone()[0]
        except Exception as error:  # noqa: BLE001 - asserted by the test
            outcome["error"] = error
        finally:
            long_reader.rollback()
            long_reader.close()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread, outcome


def test_a_rollback_behind_a_long_reader_of_the_serving_view_lets_other_readers_through(
    api_client, warehouse, users_entity, operator, approver, settings
):
    move_to(users_entity, operator, approver, "shadow")
    settings.WAREHOUSE_LOCK_TIMEOUT_MS = 200
    thread, outcome = readers_get_through(warehouse, "serving.users")
    api_client.force_authenticate(operator)
    response = api_client.post("/api/v1/entities/users/rollback/", {"reason": "wrong owners"}, format="json")
    thread.join()
    assert outcome == {"rows": 106}
    assert response.status_code == 200, response.json()
    users_entity.refresh_from_db()
    assert users_entity.mode == Mode.RULES


def test_the_rules_engine_swap_behind_a_long_reader_lets_other_readers_through(warehouse):
    thread, outcome = readers_get_through(warehouse, "rules_engine.users")
    lines: list[str] = []
    engine.run(warehouse, "users", log=lines.append, guard=engine.Guard(lock_timeout_ms=200))
    thread.join()
    assert outcome == {"rows": 106}
    assert "rules engine: rules_engine.users is being read; the swap waits for its readers" in lines
    assert query(warehouse, "select count(*) from rules_engine.users")[0][0] == 106
