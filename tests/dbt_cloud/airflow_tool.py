"""A real Apache Airflow with the stock dbt Cloud provider, in a virtualenv of its own
(tests/tools.py; `make airflow` makes it), and an AIRFLOW_HOME on SQLite whose dbt_cloud
connection points at a portal over HTTPS. Django-free: `make airflow` imports it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.tools import tool_executable

REQUIREMENTS = ("apache-airflow==3.3.2", "apache-airflow-providers-dbt-cloud==4.11.1")
DAGS = Path(__file__).resolve().parents[2] / "dbt_cloud" / "airflow" / "dags"


def airflow_executable() -> Path:
    return tool_executable(REQUIREMENTS, "airflow")


class AirflowHome:
    """AIRFLOW_HOME in `directory`: SQLite, no examples, the repository's DAGs, trusting the
    `ca` file; connect() names the portal."""

    def __init__(self, directory: Path, *, ca: Path) -> None:
        self.airflow = airflow_executable()
        self.directory = directory
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DJANGO", "PORTAL_"))},
            "AIRFLOW_HOME": str(directory),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "REQUESTS_CA_BUNDLE": str(ca),
            "SSL_CERT_FILE": str(ca),
            "PORTAL_CHECK_INTERVAL": "1",
            "PORTAL_RETRY_DELAY": "1",
            "PORTAL_OUTPUT_DIR": str(directory / "artifacts"),
        }

    def connect(self, *, host: str, account_id: int, token: str) -> None:
        """The dbt_cloud_default connection: host `127.0.0.1:<port>` (the provider builds
        `https://<host>/` and ignores a connection's port), login the account id, password the
        API token. In JSON: the URI form would split the port off the host."""
        connection = {"conn_type": "dbt_cloud", "host": host, "login": str(account_id), "password": token}
        self.env["AIRFLOW_CONN_DBT_CLOUD_DEFAULT"] = json.dumps(connection)

    def migrate(self) -> None:
        done = subprocess.run(
            [str(self.airflow), "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def dags_test(self, dag_id: str, **env: str) -> subprocess.Popen:
        """`airflow dags test <dag_id>` started (the caller waits), with `env` on top; its
        output goes to <AIRFLOW_HOME>/<n>-<dag_id>.log, n counting this home's tests."""
        log_file = self.directory / f"{len(list(self.directory.glob('*.log'))) + 1}-{dag_id}.log"
        with open(log_file, "w") as log:
            process = subprocess.Popen(
                [str(self.airflow), "dags", "test", dag_id],
                env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=self.directory,
            )  # fmt: skip
        process.log_file = log_file
        return process

    def python(self, code: str) -> str:
        """`code` run by the Airflow virtualenv's Python with this home's environment; its stdout."""
        done = subprocess.run(
            [str(self.airflow.parent / "python"), "-c", code], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout
