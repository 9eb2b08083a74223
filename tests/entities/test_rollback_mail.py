"""Rollback's mail to approvers goes through the queue: a hung SMTP server never holds the
rollback request, and EMAIL_TIMEOUT bounds the mail task's wait."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from smtplib import SMTPServerDisconnected

import pytest

from entities import notifications
from entities.models import Mode, ModeChange
from tests.conftest import drain_queue
from tests.entities.helpers import move_to

pytestmark = pytest.mark.django_db


class HungSmtpServer:
    """Accepts connections and never says a word (closes them after 30 s, so a client
    without a timeout fails instead of hanging the test for ever)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self.serve, daemon=True).start()
        self.closer = threading.Timer(30, self.close)
        self.closer.start()

    def serve(self) -> None:
        try:
            while True:
                self.accepted.append(self.socket.accept()[0])
        except OSError:
            pass

    def close(self) -> None:
        self.closer.cancel()
        for conn in [*self.accepted, self.socket]:
            conn.close()


@pytest.fixture
def hung_smtp(settings) -> Iterator[HungSmtpServer]:
    server = HungSmtpServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    yield server
    server.close()


def test_rollback_answers_at_once_with_a_hung_mail_server_and_the_mail_task_gives_up(
    api_client, warehouse, users_entity, operator, approver, hung_smtp, django_capture_on_commit_callbacks
):
    move_to(users_entity, operator, approver, "shadow")
    drain_queue()
    api_client.force_authenticate(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/entities/users/rollback/", {"reason": "wrong owners"}, format="json")
    assert response.status_code == 200, response.json()
    assert hung_smtp.accepted == [], "the request must not talk to the mail server"
    users_entity.refresh_from_db()
    assert users_entity.mode == Mode.RULES
    assert drain_queue() == ["entities.notifications.email_rollback"]
    with pytest.raises(SMTPServerDisconnected, match="timed out"):  # EMAIL_TIMEOUT (10 s), not the server's 30 s
        notifications.email_rollback(ModeChange.objects.get(kind="rollback").pk)
    assert len(hung_smtp.accepted) == 1
