"""Artifact fetch through the API (issue 12): a 50 MB manifest stored as a run's artifact,
fetched whole with GET /api/v1/runs/{id}/artifacts/manifest.json from gunicorn, p95 per
backend (database; s3 on moto's standalone server); then the database backend's stored
(compressed) bytes per run of a real inventory_transforms `dbt build`. Figures printed, the
headline last.

    .venv/bin/python bench/artifact_fetch.py [fetches=20]
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from runs_common import REPO, bench_user, queue_cluster, setup, wait_final

MANIFEST_MB = 50


def manifest_bytes() -> bytes:
    """A manifest-shaped document of MANIFEST_MB: many nodes with SQL, columns, dependencies."""
    rng, nodes, size, i = random.Random(7), {}, 0, 0
    while size < MANIFEST_MB * 1024 * 1024:
        uid = f"model.big.model_{i}"
        node = {
            "unique_id": uid,
            "raw_code": f"select id, {rng.getrandbits(64):x} as k from {{{{ ref('model_{rng.randrange(i + 1)}') }}}}\n"
            * 20,
            "columns": {f"col_{c}": {"name": f"col_{c}", "description": f"{rng.random():.12f}"} for c in range(20)},
            "depends_on": {"nodes": [f"model.big.model_{rng.randrange(i + 1)}" for _ in range(3)]},
            "checksum": f"{rng.getrandbits(256):064x}",
        }
        nodes[uid] = node
        size += len(json.dumps(node))
        i += 1
    return json.dumps({"metadata": {"dbt_version": "1.11"}, "nodes": nodes}).encode()


def store_manifest(data: bytes) -> int:
    """A run whose one dbt invocation wrote `data` as its manifest, stored and indexed."""
    from dbtlib.invocation import DbtInvocation
    from runs.artifacts import store_invocation
    from runs.models import Run, RunState

    run = Run.objects.create(project="big", command="parse", timeout_seconds=60, source="api", state=RunState.SUCCESS)
    work = Path(tempfile.mkdtemp(prefix="bench-artifact-"))
    (work / "target").mkdir()
    (work / "logs").mkdir()
    (work / "target" / "manifest.json").write_bytes(data)
    invocation = DbtInvocation("parse", [], work, work / "target", work / "logs", work / "o", work / "e")
    assert store_invocation(run.pk, 1, invocation, print)
    return run.pk


def fetch_p95(env: dict[str, str], run_id: int, token: str, fetches: int, size: int) -> float:
    from tests.hosts import free_port

    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "transformation_portal.wsgi", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "2", "--timeout", "120"],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/v1/runs/{run_id}/artifacts/manifest.json"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not answer") from None
                time.sleep(0.2)
        times = []
        for _ in range(fetches + 1):  # the first warms the worker; not counted
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=120) as response:
                got = 0
                while chunk := response.read(1024 * 1024):
                    got += len(chunk)
            times.append(time.perf_counter() - started)
            assert got == size, f"fetched {got} bytes of {size}"
        times = sorted(times[1:])
        return times[max(0, int(len(times) * 0.95) - 1)] * 1000
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(30)


def main(fetches: int) -> None:
    setup()
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import override_settings

    from accounts.models import ApiToken
    from runs.models import RunState
    from runs.services import trigger_run
    from transformation_portal.env import env_artifact_storage

    user = bench_user()
    user.groups.add(Group.objects.get(name="operator"))  # reads artifacts, triggers the build
    token = ApiToken.issue(user, "bench", 1)[1]
    data = manifest_bytes()
    print(f"manifest: {len(data) / 1e6:.1f} MB, {fetches} fetches per backend")
    from tests.s3_server import AWS, MotoServer

    moto = MotoServer("bench-artifacts")
    figures = {}
    try:
        backends = {
            "database": {"ARTIFACT_STORAGE": "database"},
            "s3": moto.env("bench"),
        }
        for backend, env in backends.items():
            os.environ.update(env)
            with override_settings(STORAGES={"artifacts": env_artifact_storage("ARTIFACT_STORAGE")}):
                started = time.perf_counter()
                run_id = store_manifest(data)
                stored = time.perf_counter() - started
            figures[backend] = fetch_p95(env, run_id, token, fetches, len(data))
            print(f"{backend}: stored in {stored:.1f} s; fetch p95 {figures[backend]:.0f} ms")
    finally:
        moto.stop()
        for name in ("AWS_S3_ENDPOINT_URL", *AWS):
            os.environ.pop(name, None)
        os.environ["ARTIFACT_STORAGE"] = "database"
    with queue_cluster():
        run = wait_final(trigger_run(project="inventory_transforms", command="build", actor=user, source="api"))
    assert run.state == RunState.SUCCESS, run.reason
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), sum(octet_length(content)), sum(size) FROM runs_storedfile WHERE name LIKE %s",
            [f"runs/{run.pk}/%"],
        )
        files, compressed, raw = cursor.fetchone()
    print(f"inventory_transforms dbt build: {files} files, {raw / 1024:.0f} KB raw, {compressed / 1024:.0f} KB stored")
    print(
        f"50 MB manifest fetch p95: database {figures['database']:.0f} ms, s3 {figures['s3']:.0f} ms; "
        f"database storage per build run: {compressed / 1024:.0f} KB compressed ({raw / compressed:.1f}x)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
