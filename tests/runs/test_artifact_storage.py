"""Artifacts where every process can read them (issue 12, item 1): a real dbt run executed by
a real queue cluster of its own (its own RUNS_DIR and queue, the backend's environment), then
served by this process (another RUNS_DIR) from the artifact storage, the worker's run
directory gone; for the database backend and for S3 (moto's standalone server)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from runs.artifacts import artifact_storage
from runs.models import Run, RunState, StoredFile
from runs.retention import prune_runs
from runs.services import trigger_run
from runs.storage import DatabaseStorage
from tests.hosts import Host
from tests.runs.conftest import wait_final
from tests.test_settings import manage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def storage_cluster(
    backend_env, dbt_projects_dir, warehouse_conninfo, transactional_db, tmp_path, settings, monkeypatch
):
    """A qcluster of its own (another host, as far as files go: its own RUNS_DIR) on the
    backend; this process (the web side) reads the same storage."""
    from django_q.conf import Conf

    from transformation_portal.env import env_artifact_storage

    queue = f"portal-test-storage-{uuid.uuid4().hex[:8]}"
    runs_dir = tmp_path / "worker-runs"
    env = {
        **os.environ,
        **backend_env,
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "RUNS_DIR": str(runs_dir),
        "QUEUE_NAME": queue,
        "QUEUE_WORKERS": "1",
    }
    for name, value in backend_env.items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = {**settings.STORAGES, "artifacts": env_artifact_storage("ARTIFACT_STORAGE")}
    monkeypatch.setattr(Conf, "CLUSTER_NAME", queue)
    monkeypatch.setattr(Conf, "PREFIX", queue)  # the queue name also salts the task signatures
    host = Host("worker", "storage-worker", tmp_path, env, runs_dir=runs_dir).start()
    host.backend = backend_env["ARTIFACT_STORAGE"]
    yield host
    host.stop()


def fetched(client, path: str) -> bytes:
    response = client.get(path)
    assert response.status_code == 200, path
    return b"".join(response.streaming_content)


def test_artifacts_are_served_from_the_storage_after_the_run_directory_is_gone(
    storage_cluster, operator, client, api_client, dbt_projects_dir, request
):
    from django.conf import settings

    run = wait_final(trigger_run(project="sleepy", command="run", select="fast", actor=operator, source="api"))
    assert run.state == RunState.SUCCESS, run.reason
    worker_runs = storage_cluster.runs_dir
    assert not (worker_runs / str(run.pk)).exists()  # stored, then deleted by the worker
    # a host that never ran the project: the partial-parse cache missed and was rebuilt
    assert (worker_runs / "_projects" / "sleepy" / "partial_parse.msgpack").is_file()
    assert Path(settings.RUNS_DIR) != worker_runs and not (Path(settings.RUNS_DIR) / str(run.pk)).exists()

    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    for name in ("manifest.json", "run_results.json", "dbt.log"):
        assert f'href="/runs/{run.pk}/artifacts/{name}"' in page
    compiled_page = f"/runs/{run.pk}/artifacts/compiled.sql/view/?node=model.sleepy.fast"
    assert compiled_page in page
    shown = client.get(compiled_page).content.decode()
    assert '<span class="k">select</span><span class="w"> </span><span class="mi">1</span>' in shown
    manifest_bytes = fetched(client, f"/runs/{run.pk}/artifacts/manifest.json")
    source_sql = (dbt_projects_dir / "sleepy" / "models" / "fast.sql").read_text()
    assert json.loads(manifest_bytes)["nodes"]["model.sleepy.fast"]["raw_code"].strip() == source_sql.strip()

    api_client.force_authenticate(operator)
    api = f"/api/v1/runs/{run.pk}/artifacts"
    results = json.loads(fetched(api_client, f"{api}/run_results.json"))["results"]
    assert [(r["unique_id"], r["status"]) for r in results] == [("model.sleepy.fast", "success")]
    compiled = fetched(api_client, f"{api}/compiled.sql?node=model.sleepy.fast").decode()
    assert compiled.strip() == "select 1 as id"
    assert b"model.sleepy.fast" in fetched(api_client, f"{api}/dbt.log")
    assert api_client.get(f"{api}/catalog.json").status_code == 404  # dbt run writes no catalog

    stored = f"runs/{run.pk}/1/"
    if storage_cluster.backend == "database":
        manifest_row = StoredFile.objects.get(name=stored + "manifest.json")
        assert len(bytes(manifest_row.content)) < len(manifest_bytes)  # compressed
    else:
        moto = request.getfixturevalue("moto_s3")
        s3 = moto.s3
        prefix = storage_cluster.backend.split("/", 3)[3] + "/" + stored
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=moto.bucket, Prefix=prefix).get("Contents", [])}
        assert {prefix + "manifest.json", prefix + "run_results.json", prefix + "dbt.log"} <= keys
        obj = s3.get_object(Bucket=moto.bucket, Key=prefix + "manifest.json")["Body"].read()
        assert obj == manifest_bytes

    # retention: the run's stored files and index rows go, the audit row counts them
    count = run.artifacts.count()
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=40))
    assert prune_runs(days=30).artifacts == count >= 4
    assert AuditEvent.objects.filter(action="runs.pruned").latest("id").after["artifacts"] == count
    assert api_client.get(f"{api}/manifest.json").status_code == 404
    assert not run.artifacts.exists() and not artifact_storage().exists(stored + "manifest.json")
    if storage_cluster.backend == "database":
        assert not StoredFile.objects.filter(name__startswith=stored).exists()
    else:
        assert s3.list_objects_v2(Bucket=moto.bucket, Prefix=prefix).get("KeyCount") == 0


def test_database_storage_is_a_storage_backend(db):
    storage = DatabaseStorage()
    big = (b'{"node": "model.x", "depends_on": []}\n' * 200_000) + os.urandom(100_000)  # ~7.5 MB
    name = storage.save("runs/1/1/manifest.json", ContentFile(big))
    assert name == "runs/1/1/manifest.json"
    assert storage.save(name, ContentFile(b"other")) != name  # a taken name is never overwritten
    storage.save("runs/1/1/compiled/p/models/a.sql", ContentFile(b"select 1"))
    with storage.open(name) as stored:
        assert stored.read() == big
    assert storage.exists(name) and storage.size(name) == len(big)
    assert timezone.now() - storage.get_modified_time(name) < timedelta(minutes=5)
    directories, files = storage.listdir("runs/1/1")
    assert directories == ["compiled"] and files[0] == "manifest.json" and len(files) == 2
    assert len(bytes(StoredFile.objects.get(name=name).content)) < len(big) / 5
    with pytest.raises(ValueError):
        storage.open(name, "wb")
    storage.delete(name)
    assert not storage.exists(name)
    with pytest.raises(FileNotFoundError):
        storage.open(name)


@pytest.mark.parametrize("value", ["ftp://x", "s3://", "s3://Bad_Bucket/p", "s3://bucket/p?x=1", "nowhere"])
def test_a_bad_artifact_storage_stops_the_start_naming_it(value):
    result = manage("check", ARTIFACT_STORAGE=value)
    assert result.returncode != 0
    assert f"ARTIFACT_STORAGE={value!r}" in result.stderr
