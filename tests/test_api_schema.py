"""The OpenAPI schema says what the API answers: every refusal with the `Error` body,
nullable fields nullable; and what the fuzzer found answers 400 or a JSON 404, never a 500
or an HTML page. (The fuzzing itself: tests/test_schemathesis.py.)"""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import pytest

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


@pytest.fixture
def schema(api_client, viewer) -> dict:
    api_client.force_authenticate(viewer)
    response = api_client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_every_refusal_is_declared_with_the_error_body(schema):
    paths = schema["paths"]
    cancel = paths["/api/v1/runs/{id}/cancel/"]["post"]["responses"]
    assert set(cancel) == {"202", "401", "403", "404", "409", "429"}
    assert all(cancel[code]["content"] == ERROR for code in ("401", "403", "404", "409", "429"))
    runs = paths["/api/v1/runs/"]["get"]["responses"]
    assert set(runs) == {"200", "400", "401", "403", "404", "414", "429"}
    assert runs["414"]["content"] == {"text/html": {"schema": {"type": "string"}}}  # gunicorn's page
    assert set(paths["/api/v1/runs/"]["post"]["responses"]) == {"202", "400", "401", "403", "409", "429", "507"}
    assert "507" in paths["/api/v1/entities/{name}/refresh/"]["post"]["responses"]
    assert "413" in paths["/api/v1/projects/{project}/manifests/"]["post"]["responses"]
    assert "503" in paths["/api/v1/audit/"]["get"]["responses"]
    assert set(paths["/api/v1/projects/"]["get"]["responses"]) == {"200", "401", "403", "429"}
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["detail", "field", "code"] and error["properties"]["field"]["nullable"]


def test_entity_actions_declare_the_bodies_they_answer_with(schema):
    paths = schema["paths"]
    refresh = paths["/api/v1/entities/{name}/refresh/"]["post"]
    assert "requestBody" not in refresh
    assert refresh["responses"]["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Run"}
    created = paths["/api/v1/entities/{name}/mode-requests/"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ModeChangeRequest"}
    reports = paths["/api/v1/entities/{name}/parity-reports/"]["get"]
    assert "page" in [p["name"] for p in reports["parameters"]]
    page = reports["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][page]["properties"]) == {"count", "next", "previous", "results"}


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ("Run", "duration_seconds"),
        ("Run", "triggered_by"),
        ("Job", "created_by"),
        ("Job", "environment"),
        ("Run", "job"),
        ("ModeChangeRequest", "decided_by"),
        ("EntityType", "owner"),
        ("EntityType", "latest_parity"),
        ("EntityType", "last_refresh"),
    ],
)
def test_fields_that_can_be_null_are_declared_nullable(schema, component, field):
    declared = schema["components"]["schemas"][component]["properties"][field]
    assert declared.get("nullable") or {"type": "null"} in declared.get("oneOf", [])


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/runs/", "/api/v1/audit/"])
def test_since_and_until_take_any_offset_python_parses(api_client, viewer, url):
    """PostgreSQL refuses offsets beyond ±15:59 (a 500 before): they are read in UTC."""
    api_client.force_authenticate(viewer)
    assert api_client.get(url, {"since": "2026-01-01T00:00:00+17:52"}).status_code == 200
    assert api_client.get(url, {"until": "2026-01-01T00:00:00-23:59"}).status_code == 200


@pytest.mark.django_db
def test_since_and_until_filter_in_utc(api_client, viewer, operator):
    from audit.services import record

    event = record(operator, "test.event")
    api_client.force_authenticate(viewer)
    utc = event.created_at.astimezone(UTC)
    just_before = (utc - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=17, minutes=52)))
    listed = api_client.get("/api/v1/audit/", {"since": just_before.isoformat(), "action": "test."}).json()
    assert [e["id"] for e in listed["results"]] == [event.pk]
    listed = api_client.get("/api/v1/audit/", {"until": just_before.isoformat(), "action": "test."}).json()
    assert listed["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/runs/", "/api/v1/audit/"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("since", "0001-01-01T00:00:00+05:00"),
        ("until", "9999-12-31T23:59:59-05:00"),
        ("since", "2026-01-01T00:00+25:00"),
    ],
)
def test_dates_with_no_utc_equivalent_are_400(api_client, viewer, url, name, value):
    api_client.force_authenticate(viewer)
    response = api_client.get(url, {name: value})
    assert response.status_code == 400
    assert response.json()["field"] == name and response.json()["code"] == "invalid"


@pytest.mark.django_db
def test_unknown_api_paths_are_a_json_404(api_client, viewer):
    api_client.force_authenticate(viewer)
    for url in ("/api/v1/runs/0.5/", "/api/v1/runs/1/cancel/x/", "/api/v1/nothing", "/api/v1/runs/0.5/artifacts/x%0Ay"):
        response = api_client.get(url)
        assert response.status_code == 404 and response["Content-Type"] == "application/json"
        assert response.json() == {"detail": "No such API endpoint.", "field": None, "code": "not_found"}
    assert api_client.post("/api/v1/runs/0.5/cancel/").status_code == 404
    redirect = api_client.get("/api/v1/runs?state=failed")  # an endpoint without its slash
    assert redirect.status_code == 301 and redirect["Location"] == "/api/v1/runs/?state=failed"


def test_the_workers_endpoint_is_declared(schema):
    workers = schema["paths"]["/api/v1/workers/"]
    assert set(workers) == {"get"}
    assert set(workers["get"]["responses"]) == {"200", "401", "403", "429"}
    assert set(schema["components"]["schemas"]["Worker"]["properties"]) == {
        "name", "hostname", "pid", "started_at", "heartbeat_at", "alive",
    }  # fmt: skip


def test_selectors_may_be_posted_as_json(schema):
    select = schema["paths"]["/api/v1/projects/{project}/select/"]
    assert set(select) == {"get", "post"}
    body = select["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    request = schema["components"]["schemas"][body]
    assert set(request["properties"]) == {"select", "exclude", "snapshot"} and request["required"] == ["select"]
    answer = select["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == select["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(select["post"]["responses"]) == {"200", "400", "401", "403", "404", "429"}
    (get_select,) = [p for p in select["get"]["parameters"] if p["name"] == "select"]
    assert "%2B" in get_select["description"]


def test_the_site_search_is_in_the_schema(schema):
    search = schema["paths"]["/api/v1/search/"]["get"]
    params = {p["name"]: p for p in search["parameters"]}
    assert set(params) == {"q", "kind", "per_kind", "limit"} and params["q"]["required"]
    assert {"200", "400", "401", "403", "503"} <= set(search["responses"])
    body = search["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    result = schema["components"]["schemas"][body]["properties"]["results"]["items"]["$ref"].rsplit("/", 1)[1]
    assert {"kind", "name", "url", "project"} <= set(schema["components"]["schemas"][result]["required"])
