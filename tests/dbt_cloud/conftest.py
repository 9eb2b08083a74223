from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosts import Api, Host
from tests.runs.conftest import queued  # noqa: F401 - the fixture, shared with tests/runs
from tests.tls import make_tls

CLIENT_ACCOUNT_ID = 1


class HttpsPortal:
    """A web host on https (a certificate of a test CA, `ca`) and a worker host."""

    def __init__(self, web: Host, worker: Host, ca) -> None:
        self.web, self.worker, self.ca = web, worker, ca

    def logs(self) -> str:
        return "\n".join(f"--- {h.role}:\n{h.log_text()[-3000:]}" for h in (self.web, self.worker))


@contextlib.contextmanager
def https_hosts(work: Path, name: str, **extra_env: str) -> Iterator[HttpsPortal]:
    """A web host on https and a worker host named `name` on the test databases, with a queue
    of their own (`extra_env` on top); their logs are printed when the block fails."""
    from django.db import connection

    tls = make_tls(work / "tls")
    env = {
        **os.environ,
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "QUEUE_NAME": f"portal-{name}-{uuid.uuid4().hex[:8]}",
        "QUEUE_WORKERS": "2",
        "WEB_WORKERS": "2",
        "SSL_CERT_FILE": str(tls.ca),
        **tls.server_env(),
        **extra_env,
    }
    web = Host("web", "web", work, env)
    web.env["PORTAL_BASE_URL"] = web.url
    hosts = HttpsPortal(web, Host("worker", f"{name}-worker", work, env), tls.ca)
    try:
        web.start()
        hosts.worker.start()
        yield hosts
    except BaseException:
        print(hosts.logs())
        raise
    finally:
        hosts.worker.stop()
        web.stop()


@pytest.fixture(scope="module")
def https_portal(django_db_setup, seeded_warehouse, tmp_path_factory):
    """For the dbt Cloud clients' suites (test_dbt_cloud_cli.py, test_dagster.py)."""
    work = tmp_path_factory.mktemp("cloud-portal")
    with https_hosts(work, "cloud", PORTAL_ACCOUNT_ID=str(CLIENT_ACCOUNT_ID)) as hosts:
        yield hosts


@pytest.fixture
def portal_api(https_portal, operator, monkeypatch) -> Api:
    """The portal's API v1 with an operator's token (this process trusts the test CA)."""
    from accounts.models import ApiToken

    monkeypatch.setenv("SSL_CERT_FILE", str(https_portal.ca))
    return Api(https_portal.web.url, ApiToken.issue(operator, "tests", 1)[1])
