"""The API against its own OpenAPI schema: schemathesis 4 fuzzes every operation of
/api/v1/schema/ with an operator's token, on a gunicorn serving the test databases, and
finds no server error, no undeclared status code, no body or content type off the schema.

schemathesis pins libraries the portal pins differently, so it lives in a virtualenv of its
own, made once under ~/.cache (XDG_CACHE_HOME) and reused. What the fuzzer triggers (runs,
refreshes, parses) goes to a queue no worker reads: nothing executes. Bounded: a fixed seed
and one random seed (printed, to replay a failure with SCHEMATHESIS_SEED=<seed>), at most
MAX_EXAMPLES cases per operation and phase. CI runs it in its first pass only (FIRST_PASS_ONLY)."""

from __future__ import annotations

import importlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.tools import tool_executable

FIRST_PASS_ONLY = True  # conftest: not again on CI's second pass (DATABASE_URL set)
ROOT = Path(__file__).resolve().parent.parent
SCHEMATHESIS = "schemathesis==4.32.5"
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"
FIXED_SEED = 11
MAX_EXAMPLES = 25
RUN_TIMEOUT = 600  # seconds per seed: about two minutes on an idle 2-core machine, far more under load


@pytest.fixture
def fuzz_data(transactional_db, operator, approver, dbt_projects_dir):
    """Something for the fuzzer to find: the entity types, a run with a node, an environment
    and a job on a cron trigger, a pending mode request by someone else, and the operator's
    bearer token."""
    from accounts.models import ApiToken
    from entities.models import EntityType, ModeChangeRequest
    from runs.jobs import create_job
    from runs.models import NodeResult, Run

    migration = importlib.import_module("entities.migrations.0002_users_and_applications")
    entities = [EntityType.objects.get_or_create(name=f["name"], defaults=f)[0] for f in migration.ENTITY_TYPES]
    run = Run.objects.create(project="inventory_transforms", command="build", timeout_seconds=60, source="api")
    NodeResult.objects.create(run=run, unique_id="model.inventory_transforms.stg_users", name="stg_users")
    create_job(
        actor=operator, source="api", project="inventory_transforms", name="nightly", steps=["dbt build"],
        cron="0 3 * * *", schedule_enabled=True,
    )  # fmt: skip
    ModeChangeRequest.objects.create(
        entity=entities[0], from_mode=entities[0].mode, mode="shadow", reason="fuzz", requested_by=approver
    )
    return ApiToken.issue(operator, "schemathesis", 1)[1]


@pytest.fixture
def portal_web(fuzz_data, tmp_path):
    """gunicorn on the test databases; enqueued tasks go to a queue nobody reads."""
    from django.db import connection

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "QUEUE_NAME": f"{os.environ['QUEUE_NAME']}-schemathesis",
        "PYTHONUNBUFFERED": "1",
    }
    log_file = tmp_path / "gunicorn.log"
    with open(log_file, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "transformation_portal.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--timeout", "60"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, log_file.read_text()
        try:
            return urllib.request.urlopen(f"{base}/login/", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_until(answers, "gunicorn to answer", timeout=60, interval=0.3)
        yield base, fuzz_data, log_file
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def fuzz(executable: Path, base: str, token: str, seed: int, report: Path) -> tuple[int, str, str]:
    """(exit code, output, schemathesis' summary line with its count of test cases)"""
    argv = [
        str(executable), "run", f"{base}/api/v1/schema/",
        "--header", f"Authorization: Bearer {token}",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(seed),
        "--request-timeout", "30",
        "--generation-database", "none",
        "--no-color",
        "--report", "junit", "--report-dir", str(report),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=report.parent)
    output = done.stdout + done.stderr
    lines = [line.strip() for line in output.splitlines()]
    summary = [line for line in lines if re.fullmatch(r"=+ .* in [\d.]+s =+", line)] or ["(no summary line)"]
    cases = [after for line, after in zip(lines, lines[1:], strict=False) if line == "Test cases:"] or ["?"]
    return done.returncode, output, f"schemathesis seed {seed}: {summary[-1]} (test cases: {cases[-1]})"


def test_api_conforms_to_its_openapi_schema_under_fuzzing(portal_web, tmp_path, capsys):
    base, token, log_file = portal_web
    executable = tool_executable(SCHEMATHESIS, "schemathesis")
    random_seed = int(os.environ.get("SCHEMATHESIS_SEED") or random.SystemRandom().randrange(2**31))
    failures = []
    for seed in (FIXED_SEED, random_seed):
        returncode, output, summary = fuzz(executable, base, token, seed, tmp_path / f"seed-{seed}")
        with capsys.disabled():  # shown in CI's log even when the test passes
            print(f"\n{summary}")
        if returncode != 0:
            failures.append(f"--- seed {seed} (exit {returncode}):\n{output[-20000:]}")
    server_log = log_file.read_text()
    assert not failures, "\n".join(failures) + f"\n--- gunicorn log:\n{server_log[-5000:]}"
