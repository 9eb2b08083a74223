from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from lineage.models import Snapshot
from tests.lineage.conftest import PROJECT

API = f"/api/v1/projects/{PROJECT}"
FCT_APPS = "model.inventory_transforms.fct_applications"
LINEAGE_DOC = Path(__file__).resolve().parents[2] / "docs" / "lineage.md"


def test_projects_and_snapshots(api_client, viewer, snapshot):
    api_client.force_authenticate(viewer)
    projects = api_client.get("/api/v1/projects/").json()
    ours = next(p for p in projects if p["name"] == PROJECT)
    assert ours["current_snapshot"]["id"] == snapshot.pk
    snapshots = api_client.get(f"{API}/snapshots/").json()
    assert [s["id"] for s in snapshots["results"]] == [snapshot.pk]
    assert api_client.get("/api/v1/projects/nope/snapshots/").status_code == 404


def test_nodes_search_and_detail(api_client, viewer, snapshot):
    api_client.force_authenticate(viewer)
    found = api_client.get(f"{API}/nodes/", {"search": "applications", "resource_type": "model"}).json()
    assert sorted(n["name"] for n in found["results"]) == ["fct_applications", "stg_applications"]
    detail = api_client.get(f"{API}/nodes/{FCT_APPS}/").json()
    assert detail["materialization"] == "table"
    assert sorted(detail["depends_on"]) == [
        "model.inventory_transforms.fct_users",
        "model.inventory_transforms.stg_applications",
    ]
    assert "test.inventory_transforms.not_null_fct_applications_application_id.326b6d2788" in detail["tests"]
    assert api_client.get(f"{API}/nodes/model.inventory_transforms.nope/").status_code == 404


def test_lineage_returns_nodes_and_edges(api_client, viewer, snapshot):
    api_client.force_authenticate(viewer)
    data = api_client.get(f"{API}/lineage/{FCT_APPS}/", {"up": 1, "down": 2}).json()
    assert {n["name"] for n in data["nodes"]} == {"fct_applications", "fct_users", "stg_applications"}
    assert {"parent": "model.inventory_transforms.fct_users", "child": FCT_APPS} in data["edges"]
    bad = api_client.get(f"{API}/lineage/{FCT_APPS}/", {"up": "x"})
    assert bad.status_code == 400 and bad.json()["field"] == "up"


def test_select_answer_is_plain_json_or_indented_on_request(api_client, viewer, snapshot):
    api_client.force_authenticate(viewer)
    plain = api_client.get(f"{API}/select/", {"select": "+fct_users"})
    data = plain.json()
    assert data["count"] == len(data["nodes"]) > 2
    assert plain.content == json.dumps(data, separators=(",", ":")).encode()
    indented = api_client.get(f"{API}/select/", {"select": "+fct_users"}, HTTP_ACCEPT="application/json; indent=2")
    assert indented.content == json.dumps(data, indent=2).encode()


def test_select_answers_and_bad_selector_is_400(api_client, viewer, snapshot):
    api_client.force_authenticate(viewer)
    data = api_client.get(f"{API}/select/", {"select": "+fct_users,resource_type:model"}).json()
    # As in dbt: each criterion takes in its tests (eager), so the tests of both models stay.
    assert [n for n in data["nodes"] if n.startswith("model.")] == [
        "model.inventory_transforms.fct_users",
        "model.inventory_transforms.stg_users",
    ]
    assert "test.inventory_transforms.duplicate_emails" in data["nodes"] and data["count"] == len(data["nodes"])
    bad = api_client.get(f"{API}/select/", {"select": "colour:blue"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "select" and '"colour" is not a selector method' in bad.json()["detail"]


def test_select_takes_the_selector_in_a_json_body(api_client, viewer, nobody, snapshot):
    api_client.force_authenticate(viewer)
    body = {"select": "+fct_users", "exclude": "resource_type:test"}
    response = api_client.post(f"{API}/select/", body, format="json")
    assert response.status_code == 200
    data = response.json()
    assert (data["snapshot"], data["select"]) == (snapshot.pk, "+fct_users")
    assert [n for n in data["nodes"] if n.startswith("model.")] == [
        "model.inventory_transforms.fct_users",
        "model.inventory_transforms.stg_users",
    ]
    assert data["count"] == len(data["nodes"]) and not any(n.startswith("test.") for n in data["nodes"])
    assert api_client.get(f"{API}/select/?select=%2Bfct_users&exclude=resource_type%3Atest").json() == data
    chosen = api_client.post(f"{API}/select/", {**body, "snapshot": snapshot.pk}, format="json")
    assert chosen.json() == data
    for missing in (999999, 10**20):
        assert api_client.post(f"{API}/select/", {**body, "snapshot": missing}, format="json").status_code == 404
    for bad, field in (({"select": ""}, "select"), ({}, "select"), ({"select": "colour:blue"}, "select")):
        refused = api_client.post(f"{API}/select/", bad, format="json")
        assert (refused.status_code, refused.json()["field"]) == (400, field), refused.json()
    api_client.force_authenticate(nobody)
    assert api_client.post(f"{API}/select/", body, format="json").status_code == 403


def test_a_plus_read_as_a_space_in_a_query_string_is_a_400_that_says_how_to_send_it(api_client, viewer, snapshot):
    api_client.force_authenticate(viewer)
    for query, field in (
        ("select=+fct_users", "select"),
        ("select=fct_users+", "select"),
        ("select=fct_users&exclude=+stg_users", "exclude"),
    ):
        response = api_client.get(f"{API}/select/?{query}")
        assert response.status_code == 400, query
        error = response.json()
        assert error["field"] == field and error["code"] == "invalid_selector"
        assert "%2B" in error["detail"] and "--data-urlencode" in error["detail"] and "POST" in error["detail"]
    union = api_client.get(f"{API}/select/?select=fct_users+stg_users").json()  # a + between two: a space
    assert [n for n in union["nodes"] if n.startswith("model.")] == [
        "model.inventory_transforms.fct_users",
        "model.inventory_transforms.stg_users",
    ]


def test_a_plus_read_as_a_space_beside_a_depth_is_a_400_too(api_client, viewer, snapshot):
    """`1+fct_users` (one generation of parents) and `fct_users+1` arrive as "1 fct_users" and
    "fct_users 1": a union with a node named 1, never what was asked. A + that decoded to a
    space beside a number or an @ is refused with the way to send it; one between names stays
    a union."""
    api_client.force_authenticate(viewer)
    for query, field in (
        ("select=1+fct_users", "select"),
        ("select=fct_users+1", "select"),
        ("select=stg_users 2+fct_users".replace(" ", "%20"), "select"),
        ("select=fct_users&exclude=stg_users+3", "exclude"),
        ("select=tag:x,2+fct_users", "select"),
    ):
        response = api_client.get(f"{API}/select/?{query}")
        assert response.status_code == 400, query
        error = response.json()
        assert error["field"] == field and error["code"] == "invalid_selector", query
        assert "%2B" in error["detail"] and "POST" in error["detail"]
    parents = api_client.get(f"{API}/select/?select=1%2Bfct_users").json()
    assert [n for n in parents["nodes"] if n.startswith("model.")] == [
        "model.inventory_transforms.fct_users",
        "model.inventory_transforms.stg_users",
    ]
    assert api_client.get(f"{API}/select/?select=fct_users+stg_users").status_code == 200


def test_upload_needs_operator_and_refuses_bad_files(api_client, viewer, operator, snapshot, manifest_path):
    api_client.force_authenticate(viewer)
    upload = SimpleUploadedFile("manifest.json", manifest_path.read_bytes())
    assert api_client.post(f"{API}/manifests/", {"manifest": upload}, format="multipart").status_code == 403
    api_client.force_authenticate(operator)
    bad = SimpleUploadedFile(
        "manifest.json", b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v7.json"}}'
    )
    response = api_client.post(f"{API}/manifests/", {"manifest": bad}, format="multipart")
    assert response.status_code == 400
    assert response.json()["field"] == "manifest" and "v7" in response.json()["detail"]
    assert Snapshot.objects.get(is_current=True).pk == snapshot.pk
    missing = api_client.post(f"{API}/manifests/", {}, format="multipart")
    assert missing.status_code == 400 and missing.json()["field"] == "manifest"
    good = SimpleUploadedFile("manifest.json", manifest_path.read_bytes())
    created = api_client.post(f"{API}/manifests/", {"manifest": good}, format="multipart")
    assert created.status_code == 201 and created.json()["is_current"]
    event = AuditEvent.objects.get(action="lineage.manifest_uploaded", target_id=str(created.json()["id"]))
    assert event.source == "api" and event.actor_username == operator.username


def test_anonymous_is_refused(api_client, snapshot):
    assert api_client.get("/api/v1/projects/").status_code in (401, 403)


def test_the_docs_select_examples_run_as_written(live_server, viewer, snapshot):
    """Both curl commands of docs/lineage.md, against a live portal: the same
    selection, `+fct_users` read with its `+`."""
    from accounts.models import ApiToken

    block = re.search(r"```sh\n(# GET: curl -G.*?)```", LINEAGE_DOC.read_text(), re.S).group(1)
    _token, plaintext = ApiToken.issue(viewer, "readme", 1)
    env = {**os.environ, "PORTAL": live_server.url, "TOKEN": plaintext}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    decoder, answers, position = json.JSONDecoder(), [], 0
    while position < len(out.stdout):
        answer, position = decoder.raw_decode(out.stdout, position)
        answers.append(answer)
    got, posted = answers
    assert got == posted and got["select"] == "+fct_users" and got["snapshot"] == snapshot.pk
    assert "model.inventory_transforms.stg_users" in got["nodes"]
    assert not any(n.startswith("test.") for n in got["nodes"])
