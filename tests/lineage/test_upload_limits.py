"""Manifest upload under hostile input (issue 11, S8): a size cap (413 on API and page) and
a 400 naming the field, and where in the manifest, for every malformed shape — never a 500,
and nothing stored."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from lineage.models import Snapshot
from tests.lineage.conftest import PROJECT

API = f"/api/v1/projects/{PROJECT}/manifests/"
V12 = "https://schemas.getdbt.com/dbt/manifest/v12.json"
META = '"metadata": {"dbt_schema_version": "' + V12 + '", "dbt_version": "1.8.0"}'


def with_node(body: str) -> bytes:
    return ("{" + META + ', "nodes": {"model.p.a": ' + body + "}}").encode()


NODE = '"resource_type": "model", "name": "a", "package_name": "p"'

# (what, upload bytes, words the detail must hold)
MALFORMED = [
    ("deep nesting", ("{" + META + ', "docs": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(), "nested"),
    ("NaN", with_node("{" + NODE + ', "config": {"x": NaN}}'), "NaN"),
    ("Infinity", with_node("{" + NODE + ', "config": {"x": -Infinity}}'), "Infinity"),
    ("overflowing float", with_node("{" + NODE + ', "config": {"x": 1e999}}'), "number"),
    ("a 5000-digit integer", with_node("{" + NODE + ', "config": {"x": ' + "9" * 5000 + "}}"), "number"),
    ("list-valued columns", with_node("{" + NODE + ', "columns": [{"name": "id"}]}'), "columns"),
    ("list-valued column", with_node("{" + NODE + ', "columns": {"id": ["x"]}}'), "columns"),
    ("column name an object", with_node("{" + NODE + ', "columns": {"id": {"name": {}}}}'), "columns"),
    ("fqn a number", with_node("{" + NODE + ', "fqn": 5}'), "fqn"),
    ("tags a number", with_node("{" + NODE + ', "tags": 5}'), "tags"),
    ("tags of objects", with_node("{" + NODE + ', "tags": [{"a": 1}]}'), "tags"),
    ("depends_on.nodes a number", with_node("{" + NODE + ', "depends_on": {"nodes": 5}}'), "depends_on"),
    ("name an object", with_node('{"resource_type": "model", "name": {"a": 1}}'), "name"),
    ("long resource_type", with_node('{"resource_type": "' + "x" * 100 + '", "name": "a"}'), "resource_type"),
    ("long materialized", with_node("{" + NODE + ', "config": {"materialized": "' + "m" * 99 + '"}}'), "materializ"),
    ("NUL in a description", with_node("{" + NODE + ', "description": "a\\u0000b"}'), "NUL"),
    ("NUL in config", with_node("{" + NODE + ', "config": {"x": "a\\u0000b"}}'), "NUL"),
    ("lone surrogate", with_node("{" + NODE + ', "description": "\\ud800"}'), "surrogate"),
    ("not UTF-8", b'{"metadata": "\xff\xfe"}', "JSON"),
    (
        "long dbt_version",
        ('{"metadata": {"dbt_schema_version": "' + V12 + '", "dbt_version": "' + "9" * 50 + '"}}').encode(),
        "dbt_version",
    ),
    ("nodes a list", ("{" + META + ', "nodes": []}').encode(), "nodes"),
    ("a JSON list", b"[1, 2]", "object"),
]


@pytest.mark.parametrize(("what", "data", "words"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_manifest_is_400_naming_the_field(api_client, operator, snapshot, what, data, words):
    api_client.force_authenticate(operator)
    response = api_client.post(API, {"manifest": SimpleUploadedFile("m.json", data)}, format="multipart")
    assert response.status_code == 400, (what, response.status_code, response.content[:300])
    body = response.json()
    assert body["field"] == "manifest" and words in body["detail"], (what, body)
    assert Snapshot.objects.get(is_current=True).pk == snapshot.pk and Snapshot.objects.count() == 1


def test_malformed_catalog_names_the_catalog(api_client, operator, snapshot, manifest_path):
    api_client.force_authenticate(operator)
    files = {
        "manifest": SimpleUploadedFile("manifest.json", manifest_path.read_bytes()),
        "catalog": SimpleUploadedFile("catalog.json", b'{"nodes": {"model.p.a": {"columns": NaN}}}'),
    }
    response = api_client.post(API, files, format="multipart")
    assert response.status_code == 400 and response.json()["field"] == "catalog", response.content[:300]
    assert Snapshot.objects.count() == 1


def test_upload_above_the_cap_is_413_on_api_and_page(api_client, client, operator, snapshot, settings):
    settings.MANIFEST_UPLOAD_MAX_MB = 1
    big = json.dumps({"metadata": {"dbt_schema_version": V12}, "padding": "x" * (1024 * 1024 + 1)}).encode()
    api_client.force_authenticate(operator)
    response = api_client.post(API, {"manifest": SimpleUploadedFile("m.json", big)}, format="multipart")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large" and "MANIFEST_UPLOAD_MAX_MB" in response.json()["detail"]
    client.force_login(operator)
    page = client.post(f"/lineage/{PROJECT}/upload/", {"manifest": SimpleUploadedFile("m.json", big)})
    assert page.status_code == 413 and "larger than 1 MB" in page.content.decode()
    assert Snapshot.objects.count() == 1
