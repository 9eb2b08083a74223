"""The inventory_transforms dbt project against real PostgreSQL and the real dbt CLI.

Every test gets its own scratch warehouse database (created beside the session's
warehouse and dropped afterwards), so broken builds and generated data never leak into
other tests. Expectations come from the seed CSVs: hand-checked facts about the planted
rows, or a small independent computation over the CSV.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.test import override_settings
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from audit.models import AuditEvent
from entities import rawdata
from entities.rawdata import load_raw_data

REPO = Path(__file__).resolve().parents[2]
PROFILES_DIR = REPO / "dbt_projects"
PROJECT_DIR = PROFILES_DIR / "inventory_transforms"
DBT = str(Path(sys.executable).with_name("dbt"))
CANONICAL_DEPARTMENTS = {
    "Engineering",
    "Finance",
    "Human Resources",
    "Sales",
    "Marketing",
    "Operations",
    "Legal",
    "Unassigned",
}


@dataclass(frozen=True)
class Warehouse:
    conninfo: str
    env: dict[str, str]

    def query(self, statement: str) -> list[tuple]:
        with psycopg.connect(self.conninfo) as conn:
            return conn.execute(statement).fetchall()


@dataclass(frozen=True)
class DbtResult:
    exit_code: int
    output: str
    statuses: dict[str, str]  # node name -> status from run_results.json
    failures: dict[str, int | None]  # node name -> failing rows (tests)

    def named(self, *statuses: str) -> set[str]:
        return {name for name, status in self.statuses.items() if status in statuses}


@contextmanager
def _scratch_database(warehouse_conninfo: str, warehouse_env: dict[str, str]) -> Iterator[Warehouse]:
    params = conninfo_to_dict(warehouse_conninfo)
    name = f"{params['dbname']}_dbt_{uuid.uuid4().hex[:8]}"
    assert name.startswith("test_")
    admin = make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield Warehouse(
            conninfo=make_conninfo(**{**params, "dbname": name}),
            env={**warehouse_env, "DBT_DBNAME": name},
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def scratch_warehouse(warehouse_conninfo: str, warehouse_env: dict[str, str]) -> Iterator[Warehouse]:
    """An empty warehouse database of the test's own."""
    with _scratch_database(warehouse_conninfo, warehouse_env) as warehouse:
        yield warehouse


@dataclass(frozen=True)
class DemoBuild:
    warehouse: Warehouse
    seed: DbtResult
    build: DbtResult


@pytest.fixture(scope="module")
def demo_build(
    warehouse_conninfo: str, warehouse_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoBuild]:
    """The unmodified project seeded and built once, for the tests that only read the result."""
    work_dir = tmp_path_factory.mktemp("demo-build")
    with _scratch_database(warehouse_conninfo, warehouse_env) as warehouse:
        seed = dbt("seed", warehouse, work_dir)
        build = dbt("build", warehouse, work_dir) if seed.exit_code == 0 else seed
        yield DemoBuild(warehouse, seed, build)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A private copy of the project that a test may break."""
    copy = tmp_path / "inventory_transforms"
    shutil.copytree(PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    return copy


def dbt(command: str, warehouse: Warehouse, work_dir: Path, project_dir: Path = PROJECT_DIR) -> DbtResult:
    """Run one dbt command as a subprocess; target and logs go under work_dir."""
    run_dir = work_dir / f"dbt-{command}-{uuid.uuid4().hex[:6]}"
    completed = subprocess.run(
        [
            DBT,
            command,
            "--project-dir",
            str(project_dir),
            "--profiles-dir",
            str(PROFILES_DIR),
            "--target-path",
            str(run_dir / "target"),
            "--log-path",
            str(run_dir / "logs"),
        ],
        env=warehouse.env,
        cwd=work_dir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    results_file = run_dir / "target" / "run_results.json"
    results = json.loads(results_file.read_text())["results"] if results_file.exists() else []
    return DbtResult(
        exit_code=completed.returncode,
        output=completed.stdout + completed.stderr,
        statuses={r["unique_id"].split(".")[2]: r["status"] for r in results},
        failures={r["unique_id"].split(".")[2]: r.get("failures") for r in results},
    )


def seed_rows(name: str) -> list[dict[str, str]]:
    with (PROJECT_DIR / "seeds" / f"{name}.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def normalised(email: str) -> str:
    return email.strip(" ").lower()


# -- a) the demo seeds --------------------------------------------------------------------


def test_seed_then_build_is_green_with_only_the_orphan_warning(demo_build: DemoBuild) -> None:
    seed, build = demo_build.seed, demo_build.build
    assert seed.exit_code == 0, seed.output
    assert seed.statuses == {"users": "success", "applications": "success"}
    assert build.exit_code == 0, build.output
    assert build.named("warn") == {"app_owner_exists"}
    assert build.named("error", "fail", "skipped") == set()
    orphaned = [row for row in seed_rows("applications") if int(row["id"]) in {3, 8, 12, 14, 21, 23, 27, 30, 38, 43}]
    assert build.failures["app_owner_exists"] == len(orphaned)


def test_build_collapses_duplicate_accounts_to_one_row_per_email(demo_build: DemoBuild) -> None:
    assert demo_build.build.exit_code == 0, demo_build.build.output

    people = demo_build.warehouse.query("select email, user_id, is_active from core.fct_users")
    raw_emails = {normalised(row["email"]) for row in seed_rows("users")} - {""}
    assert sorted(email for email, _, _ in people) == sorted(raw_emails)
    survivors = {email: user_id for email, user_id, _ in people}
    # Planted duplicate groups (ids from seeds/users.csv) and who must survive:
    assert survivors["maria.moreau@example.com"] == 7  # 7 active beats 106 terminated, though older
    assert survivors["tom.rossi@example.com"] == 107  # both active: latest updated_at
    assert survivors["li.eriksen@example.com"] == 23  # both active, same updated_at: lowest id
    assert survivors["siobhan.adams@example.com"] == 109  # both inactive: latest updated_at
    assert survivors["sam.dubois@example.com"] == 111  # 40, 110 (same exact email), 111
    assert "build-bot" not in {name for (name,) in demo_build.warehouse.query("select full_name from core.fct_users")}


def test_build_flags_deactivated_people_and_maps_every_department(demo_build: DemoBuild) -> None:
    assert demo_build.build.exit_code == 0, demo_build.build.output

    rows = demo_build.warehouse.query("select user_id, is_active, department from core.fct_users")
    by_id = {user_id: (is_active, department) for user_id, is_active, department in rows}
    accounts_per_email = Counter(normalised(row["email"]) for row in seed_rows("users"))
    single_accounts = [row for row in seed_rows("users") if accounts_per_email[normalised(row["email"])] == 1]
    for row in single_accounts:
        if row["email"].strip(" "):
            expected_active = row["status"].strip(" ").lower() in {"active", "enabled"}
            assert by_id[int(row["id"])][0] is expected_active, row
    assert by_id[113] == (False, "Legal")  # status left blank: not active
    assert by_id[109][0] is False  # both accounts deactivated
    assert {department for _, department in by_id.values()} == CANONICAL_DEPARTMENTS
    spot_checks = {
        2: "Engineering",  # ' engineering '
        3: "Engineering",  # 'ENG'
        11: "Finance",  # 'fin & accounting'
        17: "Human Resources",  # 'h.r.'
        22: "Sales",  # 'Business Development'
        24: "Marketing",  # 'MKTG'
        30: "Unassigned",  # blank
        33: "Unassigned",  # 'n/a'
        107: "Marketing",  # survivor's own department ('MKTG'), not the older account's 'Finance'
    }
    assert {user_id: by_id[user_id][1] for user_id in spot_checks} == spot_checks


def test_build_keeps_orphaned_applications_and_flags_their_owner(demo_build: DemoBuild) -> None:
    assert demo_build.build.exit_code == 0, demo_build.build.output

    rows = demo_build.warehouse.query(
        "select application_id, application_name, owner_email, owner_user_id, owner_status from core.fct_applications"
    )
    apps = {row[0]: row[1:] for row in rows}
    assert len(apps) == len(seed_rows("applications"))
    status = {app_id: values[3] for app_id, values in apps.items()}
    departed = {3, 8, 12, 23, 30, 43}  # owners 10, 109, 113, 80, 109, 30 are not active
    unknown = {14, 21, 27, 38}  # partner contractor, two never-employed emails, no owner
    assert {app_id for app_id, s in status.items() if s == "departed"} == departed
    assert {app_id for app_id, s in status.items() if s == "unknown"} == unknown
    assert {s for app_id, s in status.items() if app_id not in departed | unknown} == {"active"}
    assert apps[33][1:3] == ("maria.moreau@example.com", 7)  # ' MARIA.MOREAU@EXAMPLE.COM  '
    assert apps[8][1:3] == ("siobhan.adams@example.com", 109)
    assert apps[27][1:3] == (None, None)
    assert apps[1][0] == "Payroll Portal"  # ' Payroll Portal'
    assert apps[2][0] == "Jira"  # 'Jira  '


# -- b) the planted bad rows fail the tests once the cleaning is removed ------------------

NAIVE_STG_USERS = """
select
    cast(btrim(id) as bigint) as user_id,
    email,
    btrim(full_name) as full_name,
    {{ map_department('department') }} as department,
    coalesce(lower(btrim(status)) in ('active', 'enabled'), false) as is_active,
    cast(nullif(btrim(updated_at), '') as timestamp) as updated_at
from {{ source('raw', 'users') }}
"""


def test_build_fails_on_duplicates_when_staging_stops_normalising_and_deduplicating(
    scratch_warehouse: Warehouse, project_copy: Path, tmp_path: Path
) -> None:
    (project_copy / "models" / "staging" / "stg_users.sql").write_text(NAIVE_STG_USERS)
    assert dbt("seed", scratch_warehouse, tmp_path, project_copy).exit_code == 0

    build = dbt("build", scratch_warehouse, tmp_path, project_copy)

    assert build.exit_code == 1, build.output
    assert {"duplicate_emails", "unique_fct_users_email"} <= build.named("fail")
    assert build.statuses["fct_users_department_is_canonical"] == "pass"
    assert build.statuses["unique_fct_users_user_id"] == "pass"


def test_build_fails_on_departments_when_the_mapping_is_removed(
    scratch_warehouse: Warehouse, project_copy: Path, tmp_path: Path
) -> None:
    (project_copy / "macros" / "map_department.sql").write_text(
        "{% macro map_department(column) -%} {{ column }} {%- endmacro %}\n"
    )
    assert dbt("seed", scratch_warehouse, tmp_path, project_copy).exit_code == 0

    build = dbt("build", scratch_warehouse, tmp_path, project_copy)

    assert build.exit_code == 1, build.output
    assert {"fct_users_department_is_canonical", "not_null_fct_users_department"} <= build.named("fail")
    assert build.statuses["duplicate_emails"] == "pass"
    assert build.statuses["unique_fct_users_email"] == "pass"


# -- c) generated raw data ------------------------------------------------------------------


def test_generator_is_deterministic_for_a_seed() -> None:
    first = list(rawdata.generate_users(2_000, seed=3))
    assert first == list(rawdata.generate_users(2_000, seed=3))
    assert first != list(rawdata.generate_users(2_000, seed=4))
    people = rawdata.people_count(2_000)
    apps = list(rawdata.generate_applications(500, people, seed=3))
    assert apps == list(rawdata.generate_applications(500, people, seed=3))


@dataclass(frozen=True)
class GeneratedBuild:
    warehouse: Warehouse
    run: DbtResult
    test: DbtResult


@pytest.fixture(scope="module")
def generated_build(
    warehouse_conninfo: str, warehouse_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GeneratedBuild]:
    """Generated raw data in an empty warehouse, then `dbt run` and `dbt test` (no seed)."""
    work_dir = tmp_path_factory.mktemp("generated-build")
    with _scratch_database(warehouse_conninfo, warehouse_env) as warehouse:
        with psycopg.connect(warehouse.conninfo) as conn:
            load_raw_data(conn, users=5_000, applications=1_500, seed=11)
        run = dbt("run", warehouse, work_dir)
        test = dbt("test", warehouse, work_dir)
        yield GeneratedBuild(warehouse, run, test)


@pytest.mark.django_db
def test_generate_raw_data_command_loads_reports_and_audits(scratch_warehouse: Warehouse) -> None:
    out = io.StringIO()
    with override_settings(WAREHOUSE_CONNINFO=scratch_warehouse.conninfo):
        call_command("generate_raw_data", users=500, applications=150, seed=11, stdout=out)
    assert "500 users" in out.getvalue() and "150 applications" in out.getvalue()
    assert scratch_warehouse.query("select count(*) from raw.users") == [(500,)]
    assert scratch_warehouse.query("select count(*) from raw.applications") == [(150,)]
    event = AuditEvent.objects.get(action="warehouse.raw.generate")
    assert (event.source, event.after["users"]) == ("command", 500)


def test_generated_raw_data_runs_and_tests_green(generated_build: GeneratedBuild) -> None:
    assert generated_build.run.exit_code == 0, generated_build.run.output
    assert generated_build.test.exit_code == 0, generated_build.test.output
    assert generated_build.test.named("error", "fail") == set()


def test_generated_raw_data_has_the_seeds_dirty_shapes(generated_build: GeneratedBuild) -> None:
    query = generated_build.warehouse.query
    ((raw_rows, raw_active_rows, raw_departments),) = query(
        "select count(*), count(*) filter (where lower(btrim(status)) in ('active', 'enabled')),"
        " count(distinct department) from raw.users"
    )
    ((emails, exact_emails, normalised_emails),) = query(
        "select count(email), count(distinct email), count(distinct lower(btrim(email))) from raw.users"
        " where btrim(email) <> ''"
    )
    ((people, inactive_people),) = query("select count(*), count(*) filter (where not is_active) from core.fct_users")
    assert 0.025 <= (raw_rows - people) / raw_rows <= 0.045  # duplicate accounts + no-email rows
    assert exact_emails < emails  # some duplicate accounts repeat the exact email
    assert normalised_emails < exact_emails  # others differ only by case or padding
    assert 0.07 <= 1 - raw_active_rows / raw_rows <= 0.14  # deactivated accounts
    assert 0.07 <= inactive_people / people <= 0.14
    assert raw_departments > 40  # names and codes in many spellings
    owner_status = dict(query("select owner_status, count(*) from core.fct_applications group by owner_status"))
    assert 0.04 <= owner_status["departed"] / 1_500 <= 0.16
    assert 0.04 <= owner_status["unknown"] / 1_500 <= 0.13


def test_generated_department_spellings_map_as_the_generator_intends(generated_build: GeneratedBuild) -> None:
    observed = generated_build.warehouse.query(
        "select distinct lower(btrim(raw.department)), users.department"
        " from raw.users as raw join core.fct_users as users on users.user_id = cast(raw.id as bigint)"
    )
    intended = {
        spelling: canonical for canonical, spellings in rawdata.DEPARTMENT_SPELLINGS.items() for spelling in spellings
    }
    for spelling, department in observed:
        assert department == intended.get(spelling or "", "Unassigned"), spelling
    assert {spelling for spelling, _ in observed} >= set(intended)


def test_generator_reloads_raw_tables_without_dropping_views_on_them(scratch_warehouse: Warehouse) -> None:
    with psycopg.connect(scratch_warehouse.conninfo) as conn:
        rawdata.load_raw_data(conn, users=500, applications=50, seed=1)
        conn.execute("create schema staging")
        conn.execute("create view staging.raw_user_count as select count(*) as n from raw.users")
        conn.commit()
        rawdata.load_raw_data(conn, users=300, applications=20, seed=2)

    assert scratch_warehouse.query("select n from staging.raw_user_count") == [(300,)]
    assert scratch_warehouse.query("select count(*) from raw.applications") == [(20,)]
