from __future__ import annotations

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from lineage.models import Snapshot
from lineage.services import ingest_manifest, record_run_results
from runs.models import Run
from tests.conftest import PASSWORD
from tests.lineage.conftest import PROJECT

FCT_USERS = "model.inventory_transforms.fct_users"


@pytest.fixture
def as_viewer(client, viewer):
    client.login(username=viewer.username, password=PASSWORD)
    return client


@pytest.fixture
def as_operator(client, operator):
    client.login(username=operator.username, password=PASSWORD)
    return client


def test_project_list_shows_counts_and_dbt_version(as_viewer, snapshot):
    page = as_viewer.get("/lineage/").content.decode()
    assert PROJECT in page
    assert "model 4" in page and "source 2" in page and "seed 2" in page
    assert snapshot.dbt_version in page


def test_search_finds_models_by_name_path_and_description(as_viewer, snapshot):
    page = as_viewer.get(f"/lineage/{PROJECT}/", {"q": "fct_users"}).content.decode()
    assert f"/lineage/{PROJECT}/nodes/{FCT_USERS}/" in page
    by_description = as_viewer.get(f"/lineage/{PROJECT}/", {"q": "owner resolved"}).content.decode()
    assert "fct_applications" in by_description and "stg_users" not in by_description
    by_path = as_viewer.get(f"/lineage/{PROJECT}/", {"q": "models/staging", "resource_type": "model"})
    assert by_path.context["page"].paginator.count == 2


def test_parse_now_and_upload_only_for_operators(client, viewer, operator, snapshot):
    client.login(username=viewer.username, password=PASSWORD)
    assert "Parse now" not in client.get(f"/lineage/{PROJECT}/").content.decode()
    assert client.get(f"/lineage/{PROJECT}/upload/").status_code == 403
    client.login(username=operator.username, password=PASSWORD)
    page = client.get(f"/lineage/{PROJECT}/").content.decode()
    assert 'action="/runs/new/"' in page and 'name="command" value="parse"' in page and "csrfmiddlewaretoken" in page


def test_parse_now_button_starts_a_parse_run(client, operator, snapshot):
    """Posts exactly the hidden fields the button's form carries, as the browser would."""
    client.login(username=operator.username, password=PASSWORD)
    page = client.get(f"/lineage/{PROJECT}/").content.decode()
    form = page[page.index('action="/runs/new/"') : page.index("Parse now")]
    fields = dict(re.findall(r'<input type="hidden" name="(project|command)" value="([^"]*)"', form))
    assert fields == {"project": PROJECT, "command": "parse"}
    response = client.post("/runs/new/", fields)
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (run.project, run.command) == (PROJECT, "parse")


def test_users_without_a_role_are_refused(client, nobody, snapshot):
    client.login(username=nobody.username, password=PASSWORD)
    assert client.get("/lineage/").status_code == 403
    assert client.get(f"/lineage/{PROJECT}/nodes/{FCT_USERS}/").status_code == 403


def test_node_page_shows_docs_columns_sql_tests_and_latest_run(as_viewer, snapshot):
    email_test = "test.inventory_transforms.unique_fct_users_email.3eecb070fe"
    results = [
        {"unique_id": FCT_USERS, "status": "success", "execution_time": 0.42, "completed_at": None, "message": "OK"},
        {
            "unique_id": email_test,
            "status": "fail",
            "execution_time": 0.1,
            "completed_at": None,
            "message": "Got 2 results",
        },
    ]
    record_run_results(PROJECT, 12, results)
    response = as_viewer.get(f"/lineage/{PROJECT}/nodes/{FCT_USERS}/")
    page = response.content.decode()
    assert "The directory of people, one row per normalised email" in page
    assert "Primary key; raw id of the surviving account." in page
    assert "ref(&#x27;stg_users&#x27;)" in page or "ref('stg_users')" in page
    assert "unique_fct_users_email" in page and "Got 2 results" in page
    assert "0.42 s" in page and 'href="/runs/12/"' in page
    assert "table" in page  # materialization
    graph = response.context["graph"]
    names = {n["name"]: n["hops"] for n in graph["nodes"]}
    assert names == {"fct_users": 0, "stg_users": -1, "users": -2, "fct_applications": 1}


def test_hops_are_adjustable(as_viewer, snapshot):
    response = as_viewer.get(
        f"/lineage/{PROJECT}/nodes/model.inventory_transforms.fct_applications/", {"up": 1, "down": 0}
    )
    assert {n["name"] for n in response.context["graph"]["nodes"]} == {
        "fct_applications",
        "fct_users",
        "stg_applications",
    }


def test_script_in_description_and_column_name_is_escaped(as_viewer, db, manifest_json, tmp_path):
    manifest = json.loads(json.dumps(manifest_json))
    node = manifest["nodes"][FCT_USERS]
    node["description"] = "Hello <script>alert('desc')</script> **bold** <img src=x onerror=alert(1)>"
    node["description"] += ' [click](javascript:alert(2)) <a href="javascript:alert(3)">raw</a>'
    node["columns"]["<script>alert('col')</script>"] = {"name": "<script>alert('col')</script>", "description": "x"}
    node["tags"] = ["<script>alert('tag')</script>"]
    node["original_file_path"] = "models/<img src=x onerror=alert(4)>.sql"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    ingest_manifest(PROJECT, path)
    page = as_viewer.get(f"/lineage/{PROJECT}/nodes/{FCT_USERS}/").content.decode()
    assert "<script>alert" not in page
    assert "alert(1)" not in page and "<img src=x onerror" not in page
    assert "javascript:" not in page
    assert "&lt;script&gt;alert(&#x27;col&#x27;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#x27;tag&#x27;)&lt;/script&gt;" in page
    assert "models/&lt;img src=x onerror=alert(4)&gt;.sql" in page
    assert "<strong>bold</strong>" in page


def test_older_snapshots_stay_browsable(as_viewer, snapshot, manifest_path):
    newer = ingest_manifest(PROJECT, manifest_path, run_id=3)
    page = as_viewer.get(f"/lineage/{PROJECT}/", {"snapshot": snapshot.pk}).content.decode()
    assert f"browsing snapshot #{snapshot.pk}" in page
    node = as_viewer.get(f"/lineage/{PROJECT}/nodes/{FCT_USERS}/", {"snapshot": snapshot.pk})
    assert node.status_code == 200 and node.context["snapshot"].pk == snapshot.pk
    assert as_viewer.get(f"/lineage/{PROJECT}/").context["snapshot"].pk == newer.pk


def test_whole_project_view_groups_by_folder_and_loads_nodes_on_demand(as_viewer, snapshot):
    page = as_viewer.get(f"/lineage/{PROJECT}/groups/")
    folders = {g["folder"]: g for g in page.context["groups"]}
    assert folders["inventory_transforms/models/core"]["counts"] == {"model": 2}
    # stg_users -> fct_users and stg_applications -> fct_applications
    assert folders["inventory_transforms/models/staging"]["feeds"] == {"inventory_transforms/models/core": 2}
    assert folders["inventory_transforms/models/core"]["fed_by"] == ["inventory_transforms/models/staging"]
    hops = {n["unique_id"]: n["hops"] for n in page.context["graph"]["nodes"]}
    assert hops["inventory_transforms/models"] < hops["inventory_transforms/models/staging"]  # sources live there
    assert hops["inventory_transforms/models/staging"] < hops["inventory_transforms/models/core"]
    data = as_viewer.get(f"/lineage/{PROJECT}/groups/nodes/", {"folder": "inventory_transforms/models/staging"}).json()
    assert sorted(n["name"] for n in data["nodes"]) == ["stg_applications", "stg_users"]


def test_upload_page_ingests_and_audits(as_operator, operator, manifest_path):
    upload = SimpleUploadedFile("manifest.json", manifest_path.read_bytes(), content_type="application/json")
    response = as_operator.post(f"/lineage/{PROJECT}/upload/", {"manifest": upload})
    assert response.status_code == 302
    snapshot = Snapshot.objects.get()
    assert snapshot.is_current and snapshot.ingested_by == operator
    assert AuditEvent.objects.get(action="lineage.manifest_uploaded").actor_username == operator.username


def test_upload_page_refuses_a_bad_file_and_changes_nothing(as_operator, snapshot):
    upload = SimpleUploadedFile("manifest.json", b"{not json", content_type="application/json")
    response = as_operator.post(f"/lineage/{PROJECT}/upload/", {"manifest": upload})
    assert response.status_code == 400
    assert "not valid JSON" in response.content.decode()
    assert list(Snapshot.objects.all()) == [snapshot] and Snapshot.objects.get().is_current


def test_a_test_node_page_draws_the_test_and_what_it_checks(as_viewer, snapshot):
    response = as_viewer.get(f"/lineage/{PROJECT}/nodes/test.inventory_transforms.app_owner_exists/")
    names = {n["name"]: n["hops"] for n in response.context["graph"]["nodes"]}
    assert names["app_owner_exists"] == 0 and names["fct_applications"] == -1 and names["fct_users"] == -1
