from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from dbtlib.manifest import NODE_COLLECTIONS
from lineage.models import Edge, Node, NodeStatus, Snapshot
from lineage.services import ManifestError, ingest_manifest, record_run_results
from tests.lineage.conftest import PROJECT


def test_ingest_gives_exactly_the_nodes_edges_columns_and_tests_dbt_reports(snapshot, manifest_json):
    expected_nodes = {uid: entry for c in NODE_COLLECTIONS for uid, entry in (manifest_json.get(c) or {}).items()}
    stored = {n.unique_id: n for n in Node.objects.filter(snapshot=snapshot)}
    assert set(stored) == set(expected_nodes)
    assert snapshot.node_count == len(expected_nodes)
    for uid, entry in expected_nodes.items():
        node = stored[uid]
        assert node.resource_type == entry["resource_type"]
        assert node.name == entry["name"]
        assert node.description == entry.get("description", "")
        assert [(c["name"], c["description"]) for c in node.columns] == [
            (c["name"], c["description"]) for c in (entry.get("columns") or {}).values()
        ]
    expected_edges = {(parent, child) for child, parents in manifest_json["parent_map"].items() for parent in parents}
    assert set(Edge.objects.filter(snapshot=snapshot).values_list("parent", "child")) == expected_edges
    expected_tests = {uid for uid, e in manifest_json["nodes"].items() if e["resource_type"] == "test"}
    assert set(Node.objects.filter(snapshot=snapshot, resource_type="test").values_list("unique_id", flat=True)) == (
        expected_tests
    )
    fct_users_tests = {
        child
        for child in manifest_json["child_map"]["model.inventory_transforms.fct_users"]
        if child.startswith("test.")
    }
    assert {
        t.unique_id for t in Node.objects.filter(snapshot=snapshot, resource_type="test", unique_id__in=fct_users_tests)
    } == fct_users_tests
    assert snapshot.is_current
    assert snapshot.dbt_version == manifest_json["metadata"]["dbt_version"]
    event = AuditEvent.objects.get(action="lineage.manifest_uploaded", target_id=str(snapshot.pk))
    assert event.after["node_count"] == len(expected_nodes)


def test_reingest_makes_the_new_snapshot_current_and_keeps_the_old_one(snapshot, manifest_path):
    second = ingest_manifest(PROJECT, manifest_path, run_id=41)
    assert list(Snapshot.objects.of_project(PROJECT).current()) == [second]
    snapshot.refresh_from_db()
    assert not snapshot.is_current
    assert Node.objects.filter(snapshot=snapshot).count() == snapshot.node_count
    assert AuditEvent.objects.filter(action="lineage.manifest_ingested", target_id=str(second.pk)).exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v9.json"}}', "v9"),
        ('{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v13.json"}}', "v13"),
        ('{"nodes": {}}', "not a dbt manifest"),
        ('{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json"', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_manifests_are_refused_and_the_current_snapshot_stays(snapshot, tmp_path, content, message):
    bad = tmp_path / "manifest.json"
    bad.write_text(content)
    with pytest.raises(ManifestError, match=message):
        ingest_manifest(PROJECT, bad)
    assert list(Snapshot.objects.all()) == [snapshot]
    assert Snapshot.objects.get().is_current


def test_a_failure_midway_leaves_the_current_snapshot_untouched(snapshot, tmp_path, manifest_json):
    broken = dict(manifest_json)
    broken["nodes"] = {**manifest_json["nodes"], "model.x.bad": "not an object"}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ManifestError, match="model.x.bad"):
        ingest_manifest(PROJECT, path)
    assert Snapshot.objects.get().pk == snapshot.pk and Snapshot.objects.get().is_current


def catalog_file(tmp_path, user_id_type: str, generated_at: str = "2026-11-27T10:00:00Z"):
    catalog = tmp_path / f"catalog-{user_id_type}.json"
    catalog.write_text(
        json.dumps(
            {
                "metadata": {"generated_at": generated_at},
                "nodes": {
                    "model.inventory_transforms.fct_users": {
                        "columns": {
                            "USER_ID": {"name": "user_id", "type": user_id_type, "index": 1},
                            "extra_col": {"name": "extra_col", "type": "integer", "index": 9},
                        }
                    }
                },
                "sources": {},
            }
        )
    )
    return catalog


def fct_users_columns(snapshot: Snapshot) -> list[dict]:
    return Node.objects.get(snapshot=snapshot, unique_id="model.inventory_transforms.fct_users").columns


def test_catalog_types_fill_column_data_types(db, manifest_path, tmp_path):
    snap = ingest_manifest(PROJECT, manifest_path, catalog_path=catalog_file(tmp_path, "text"))
    columns = fct_users_columns(snap)
    assert columns[0] == {
        "name": "user_id",
        "description": "Primary key; raw id of the surviving account.",
        "data_type": "text",
    }
    assert columns[-1] == {"name": "extra_col", "description": "", "data_type": "integer"}


def test_the_latest_catalog_stays_until_a_newer_one_replaces_it(db, manifest_path, tmp_path, settings):
    settings.LINEAGE_KEEP_SNAPSHOTS = 1
    ingest_manifest(PROJECT, manifest_path, catalog_path=catalog_file(tmp_path, "text"), run_id=1)
    for run_id in (2, 3):  # runs without docs generation; the catalog's snapshot is pruned
        later = ingest_manifest(PROJECT, manifest_path, run_id=run_id)
    assert Snapshot.objects.get() == later and later.has_catalog
    columns = fct_users_columns(later)
    assert (columns[0]["data_type"], columns[-1]["data_type"]) == ("text", "integer")
    assert later.catalog_generated_at.isoformat() == "2026-11-27T10:00:00+00:00"
    newer = ingest_manifest(
        PROJECT, manifest_path, catalog_path=catalog_file(tmp_path, "varchar", "2026-11-28T10:00:00Z"), run_id=4
    )
    assert fct_users_columns(newer)[0]["data_type"] == "varchar"
    assert newer.catalog_generated_at.isoformat() == "2026-11-28T10:00:00+00:00"


def test_run_results_keep_the_latest_status_across_reingests(snapshot, manifest_path):
    uid = "model.inventory_transforms.fct_users"
    record_run_results(PROJECT, 7, [{"unique_id": uid, "status": "error", "execution_time": 1.5,
                                      "completed_at": "2026-11-27T10:00:00Z", "message": "boom"}])  # fmt: skip
    ingest_manifest(PROJECT, manifest_path, run_id=8)
    record_run_results(PROJECT, 8, [{"unique_id": uid, "status": "success", "execution_time": 0.25,
                                      "completed_at": None, "message": "SELECT 3"}])  # fmt: skip
    status = NodeStatus.objects.get(project=PROJECT, unique_id=uid)
    assert (status.status, status.execution_time, status.run_id, status.message) == ("success", 0.25, 8, "SELECT 3")


def test_only_the_newest_snapshots_are_kept(snapshot, manifest_path, settings):
    settings.LINEAGE_KEEP_SNAPSHOTS = 2
    second = ingest_manifest(PROJECT, manifest_path, run_id=1)
    third = ingest_manifest(PROJECT, manifest_path, run_id=2)
    assert list(Snapshot.objects.order_by("pk")) == [second, third]
    assert not Node.objects.filter(snapshot_id=snapshot.pk).exists()
    assert not Edge.objects.filter(snapshot_id=snapshot.pk).exists()
    assert AuditEvent.objects.get(target_id=str(third.pk)).after["pruned_snapshots"] == [snapshot.pk]
