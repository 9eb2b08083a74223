"""dbt Cloud clients other than Airflow's, each in a virtualenv of its own (tests/tools.py,
made once under ~/.cache and reused, never in requirements): dbt-cloud-cli and dagster-dbt's
cloud_v2 workspace. Django-free."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.tools import tool_executable

CLI_REQUIREMENTS = ("dbt-cloud-cli==0.9.1",)
# dagster_dbt imports dateutil, which it leaves to dbt-core (not installed: the portal runs dbt).
DAGSTER_REQUIREMENTS = ("dagster-dbt==0.29.27", "python-dateutil==2.9.0.post0")


def client_env(ca: Path, **extra: str) -> dict[str, str]:
    """This machine's environment less the portal's, trusting the test CA."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "PORTAL_", "DBT_", "DAGSTER"))}
    return {**env, "REQUESTS_CA_BUNDLE": str(ca), "SSL_CERT_FILE": str(ca), **extra}


class DbtCloudCli:
    """`dbt-cloud` with DBT_CLOUD_HOST (`127.0.0.1:<port>`: the CLI always speaks https),
    DBT_CLOUD_ACCOUNT_ID and DBT_CLOUD_API_TOKEN set."""

    def __init__(self, *, host: str, account_id: int, token: str, ca: Path) -> None:
        self.executable = tool_executable(CLI_REQUIREMENTS, "dbt-cloud")
        self.env = client_env(ca, DBT_CLOUD_HOST=host, DBT_CLOUD_ACCOUNT_ID=str(account_id), DBT_CLOUD_API_TOKEN=token)

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.executable), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str, output: Path) -> subprocess.Popen:
        """`dbt-cloud *args` in the background, its stdout and stderr into `output` (the caller
        waits for it, or kills it)."""
        with open(output, "w") as log:
            return subprocess.Popen(
                [str(self.executable), *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True
            )

    def json(self, *args: str) -> dict:
        done = self(*args)
        assert done.returncode == 0, f"dbt-cloud {' '.join(args)}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
        return json.loads(done.stdout)


DAGSTER_SCRIPT = r"""
import datetime, json, os, sys
import dagster as dg
from dagster_dbt.cloud_v2 import DbtCloudCredentials, DbtCloudWorkspace, dbt_cloud_assets

workspace = DbtCloudWorkspace(
    credentials=DbtCloudCredentials(
        account_id=int(os.environ["PORTAL_CLOUD_ACCOUNT"]),
        token=os.environ["PORTAL_CLOUD_TOKEN"],
        access_url=os.environ["PORTAL_CLOUD_URL"],
    ),
    project_id=int(os.environ["PORTAL_CLOUD_PROJECT"]),
    environment_id=int(os.environ["PORTAL_CLOUD_ENVIRONMENT"]),
)
data = workspace.fetch_workspace_data()
print("WORKSPACE", json.dumps({"jobs": data.adhoc_job_ids, "nodes": sorted(data.manifest["nodes"])}), flush=True)


@dbt_cloud_assets(workspace=workspace)  # every node: a narrower `select` needs dbt-core here
def portal_assets(context: dg.AssetExecutionContext, dbt_cloud: DbtCloudWorkspace):
    yield from dbt_cloud.cli(args=["build"], context=context).wait()


result = dg.materialize(
    [portal_assets],
    resources={"dbt_cloud": workspace},
    selection=os.environ["PORTAL_CLOUD_SELECT"].split(),
    raise_on_error=False,
)
keys = sorted(event.asset_key.to_user_string() for event in result.get_asset_materialization_events())
print("RESULT", json.dumps({"success": result.success, "materialized": keys}), flush=True)

# What build_dbt_cloud_polling_sensor asks each tick: the runs finished in a window, a page and its total.
now = datetime.datetime.now(datetime.timezone.utc)
runs, total = workspace.get_client().get_runs_batch(
    project_id=workspace.project_id,
    environment_id=workspace.environment_id,
    finished_at_lower_bound=now - datetime.timedelta(hours=1),
    finished_at_upper_bound=now,
)
print("SENSOR", json.dumps({"runs": [run["id"] for run in runs], "total": total}), flush=True)
"""


class Dagster:
    """A Python of dagster-dbt's virtualenv running DAGSTER_SCRIPT against the portal."""

    def __init__(self, *, url: str, account_id: int, token: str, ca: Path, home: Path) -> None:
        self.python = tool_executable(DAGSTER_REQUIREMENTS, "python")
        home.mkdir(parents=True, exist_ok=True)
        self.env = client_env(
            ca,
            DAGSTER_HOME=str(home),
            PORTAL_CLOUD_URL=url,
            PORTAL_CLOUD_ACCOUNT=str(account_id),
            PORTAL_CLOUD_TOKEN=token,
        )

    def materialize(self, *, project_id: int, environment_id: int, select: str) -> tuple[dict, dict, str]:
        """Load the workspace, materialize the assets `select` names (asset keys, by spaces),
        then list the runs finished in the last hour as its polling sensor does: (the workspace
        it loaded, the materialization's outcome with the sensor's page as `sensor`, the output)."""
        env = {
            **self.env,
            "PORTAL_CLOUD_PROJECT": str(project_id),
            "PORTAL_CLOUD_ENVIRONMENT": str(environment_id),
            "PORTAL_CLOUD_SELECT": select,
        }
        done = subprocess.run(
            [str(self.python), "-c", DAGSTER_SCRIPT], env=env, capture_output=True, text=True, timeout=300
        )
        output = done.stdout + done.stderr
        found = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines()
                 if line.startswith(("WORKSPACE ", "RESULT ", "SENSOR "))}  # fmt: skip
        assert "SENSOR" in found, f"dagster exited {done.returncode}:\n{output[-6000:]}"
        return found["WORKSPACE"], {**found["RESULT"], "sensor": found["SENSOR"]}, output
