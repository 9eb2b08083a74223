"""A parity report is evidence only for the inputs it was computed from: the gate refuses one
whose raw tables, dbt project or rule set changed since; and outside the demo, dbt's seeds
never overwrite the raw tables a loader filled."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from entities.models import Mode
from entities.refresh import write_parity_report
from tests.entities.conftest import dbt, query
from tests.entities.helpers import move_to, request_change
from tests.test_settings import _external_db, manage

pytestmark = pytest.mark.django_db

LOADED = "('900001', 'loaded@example.com', 'Loaded Person', 'IT', 'active', '2024-01-01 00:00:00')"


def approve(api_client, approver, request):
    api_client.force_authenticate(approver)
    return api_client.post(f"/api/v1/mode-requests/{request.pk}/approve/", {}, format="json")


def test_a_report_whose_raw_data_changed_since_is_refused_until_refreshed(
    api_client, client, warehouse, users_entity, operator, approver
):
    users = move_to(users_entity, operator, approver, "shadow")
    report = write_parity_report(users)
    assert report.percent_display == "100.00" and report.inputs["raw"]["raw.users"].startswith("113:")
    request = request_change(users, operator, "dbt")
    with psycopg.connect(warehouse) as conn:  # a loader (or a reload of the demo seeds) writes raw.users
        conn.execute(f"insert into raw.users values {LOADED}")
    try:
        response = approve(api_client, approver, request)
        assert response.status_code == 409, response.json()
        body = response.json()
        assert (body["code"], body["parity_report"]) == ("parity_stale", report.pk)
        assert f"parity report #{report.pk} is stale: raw.users changed since it was made" in body["detail"]
        assert "Refresh users again" in body["detail"]
        client.force_login(approver)
        page = client.post(f"/entities/requests/{request.pk}/approve/", {}, follow=True).content.decode()
        assert "is stale: raw.users changed since it was made. Refresh users again" in page
        users.refresh_from_db()
        assert users.mode == Mode.SHADOW

        fresh = write_parity_report(users)  # the refresh on the current inputs
        assert fresh.inputs["raw"]["raw.users"].startswith("114:")
        assert approve(api_client, approver, request).status_code == 200
    finally:
        with psycopg.connect(warehouse) as conn:
            conn.execute("delete from raw.users where id = '900001'")
    users.refresh_from_db()
    assert users.mode == Mode.DBT


def test_a_report_whose_dbt_project_changed_since_is_refused(
    api_client, warehouse, dbt_projects_dir, users_entity, operator, approver
):
    users = move_to(users_entity, operator, approver, "shadow")
    write_parity_report(users)
    request = request_change(users, operator, "dbt")
    model = dbt_projects_dir / "inventory_transforms" / "models" / "core" / "fct_users.sql"
    original = model.read_text()
    model.write_text(original + "\n-- edited after the parity report\n")
    try:
        response = approve(api_client, approver, request)
    finally:
        model.write_text(original)
    assert response.status_code == 409 and response.json()["code"] == "parity_stale"
    assert "the dbt project inventory_transforms changed" in response.json()["detail"]
    assert approve(api_client, approver, request).status_code == 200  # the files are as the report saw them


def test_row_order_does_not_change_the_fingerprint(warehouse, users_entity):
    before = write_parity_report(users_entity).inputs
    with psycopg.connect(warehouse) as conn:  # rewrite every row: same content, new physical order
        conn.execute("update raw.users set id = id")
    assert write_parity_report(users_entity).inputs == before


def test_outside_the_demo_dbt_seed_leaves_a_loaders_raw_tables_alone(scratch_warehouse, warehouse_env, tmp_path):
    with psycopg.connect(scratch_warehouse) as conn:
        conn.execute("create schema raw")
        columns = "id text, email text, full_name text, department text, status text, updated_at text"
        conn.execute(f"create table raw.users ({columns})")
        conn.execute(f"insert into raw.users values {LOADED}")
    env = {key: value for key, value in warehouse_env.items() if key != "DBT_SEED_SCHEMA"}
    dbt(["seed"], {**env, "DBT_DBNAME": conninfo_to_dict(scratch_warehouse)["dbname"]}, tmp_path)
    assert query(scratch_warehouse, "select email from raw.users") == [("loaded@example.com",)]
    assert query(scratch_warehouse, "select count(*) from demo_seeds.users") == [(113,)]


@pytest.mark.parametrize(
    "external, demo_setting, seed_schema", [(False, "", "raw"), (True, "", "None"), (True, "true", "raw")]
)
def test_only_the_demo_loads_seeds_into_raw(external, demo_setting, seed_schema):
    """The embedded warehouse is the demo's; with external databases only the setting says so."""
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DBT_ENV.get('DBT_SEED_SCHEMA'))",
        DEMO_SEEDS_INTO_RAW=demo_setting,
        # not external: the embedded default, whatever this session runs on
        **(_external_db() if external else {"DATABASE_URL": None, "WAREHOUSE_URL": None}),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == seed_schema
