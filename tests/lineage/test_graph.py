from __future__ import annotations

import json

from lineage.graph import layers
from lineage.models import Node
from lineage.services import ingest_manifest
from tests.lineage.conftest import PROJECT


def test_layers_run_left_to_right_and_survive_cycles():
    # Folders can feed each other both ways; nodes never do.
    edges = [("raw", "staging"), ("staging", "marts"), ("marts", "staging"), ("staging", "intermediate")]
    layer = layers(["marts", "intermediate", "staging", "raw"], edges)
    assert layer["raw"] == 0 and layer["staging"] >= 1
    assert layer["intermediate"] == layer["staging"] + 1


def test_doc_blocks_left_in_descriptions_are_resolved(db, manifest_json, tmp_path):
    manifest = json.loads(json.dumps(manifest_json))
    manifest["docs"]["doc.inventory_transforms.people"] = {
        "name": "people", "package_name": "inventory_transforms", "block_contents": "Everyone in the **directory**.",
        "unique_id": "doc.inventory_transforms.people", "resource_type": "doc",
    }  # fmt: skip
    node = manifest["nodes"]["model.inventory_transforms.fct_users"]
    node["description"] = "People: {{ doc('people') }}"
    node["columns"]["email"]["description"] = '{{ doc("inventory_transforms", "people") }}'
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    stored = Node.objects.get(snapshot=ingest_manifest(PROJECT, path), unique_id="model.inventory_transforms.fct_users")
    assert stored.description == "People: Everyone in the **directory**."
    assert next(c for c in stored.columns if c["name"] == "email")["description"] == "Everyone in the **directory**."
