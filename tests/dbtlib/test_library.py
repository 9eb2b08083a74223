"""The dbt library without Django, a database or a dbt process: argv building, input checks,
the manifest model, selection, log events, the launcher's partial-parse patch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from dbtlib.commands import build_argv, check_command, check_vars
from dbtlib.errors import DbtInputError, DbtSelectorError, ManifestError
from dbtlib.events import parse_line
from dbtlib.launcher import ignore_application_name_in_parse_state
from dbtlib.manifest import Manifest
from dbtlib.selectors import check_selector, select_in_manifest

ROOT = Path(__file__).resolve().parents[2]


def _node(uid: str, **fields) -> dict:
    kind, package, name = uid.split(".")[0], uid.split(".")[1], uid.split(".")[-1]
    return {"name": name, "resource_type": kind, "package_name": package, **fields}


MANIFEST = {
    "metadata": {
        "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
        "dbt_version": "1.11.0",
        "project_name": "shop",
        "generated_at": "2026-01-02T03:04:05Z",
    },
    "nodes": {
        "model.shop.stg_users": _node(
            "model.shop.stg_users",
            fqn=["shop", "staging", "stg_users"],
            original_file_path="models/staging/stg_users.sql",
            patch_path="shop://models/staging/schema.yml",
            tags=["nightly"],
            config={"materialized": "view", "meta": {"owner": "ann"}},
            depends_on={"nodes": ["source.shop.raw.users"]},
        ),
        "model.shop.fct_users": _node(
            "model.shop.fct_users",
            fqn=["shop", "core", "fct_users"],
            original_file_path="models/core/fct_users.sql",
            config={"materialized": "table", "enabled": True},
            depends_on={"nodes": ["model.shop.stg_users"]},
        ),
        "test.shop.not_null_fct_users_id.abc": _node(
            "test.shop.not_null_fct_users_id.abc",
            fqn=["shop", "core", "not_null_fct_users_id"],
            original_file_path="models/core/schema.yml",
            test_metadata={"name": "not_null", "kwargs": {"column_name": "id"}},
            config={"severity": "ERROR"},
            depends_on={"nodes": ["model.shop.fct_users"]},
        ),
        "test.shop.no_dupes": _node(
            "test.shop.no_dupes",
            fqn=["shop", "no_dupes"],
            original_file_path="tests/no_dupes.sql",
            config={"severity": "warn"},
            depends_on={"nodes": ["model.shop.fct_users", "model.shop.stg_users"]},
        ),
    },
    "sources": {
        "source.shop.raw.users": _node(
            "source.shop.raw.users",
            source_name="raw",
            fqn=["shop", "raw", "users"],
            original_file_path="models/staging/schema.yml",
        )
    },
    "unit_tests": {
        "unit_test.shop.fct_users.counts": _node(
            "unit_test.shop.fct_users.counts",
            fqn=["shop", "core", "fct_users", "counts"],
            original_file_path="models/core/schema.yml",
            depends_on={"nodes": ["model.shop.fct_users"]},
        )
    },
    "exposures": {
        "exposure.shop.dash": _node(
            "exposure.shop.dash", fqn=["shop", "dash"], depends_on={"nodes": ["model.shop.fct_users"]}
        )
    },
    "docs": {"doc.shop.intro": {"name": "intro", "package_name": "shop", "block_contents": "Hello"}},
}


def test_argv_is_a_list_of_validated_parts():
    argv = build_argv(
        "build",
        project_dir=Path("/p"),
        profiles_dir=Path("/"),
        target_path=Path("/r/1/target"),
        log_path=Path("/r/1/logs"),
        select="+fct_users tag:nightly",
        vars={"day": "2024-01-01"},
        full_refresh=True,
    )
    assert argv[0] == "build"
    assert argv[argv.index("--select") + 1 : argv.index("--select") + 3] == ["+fct_users", "tag:nightly"]
    assert json.loads(argv[argv.index("--vars") + 1]) == {"day": "2024-01-01"}
    assert "--full-refresh" in argv and argv[argv.index("--log-format") + 1] == "json"
    assert build_argv(
        "docs generate", project_dir=Path("/p"), profiles_dir=Path("/"), target_path=Path("/t"), log_path=Path("/l")
    )[:2] == ["docs", "generate"]


@pytest.mark.parametrize("command", ["run-operation", "init", "clean", "show", "build; rm -rf /", "debug"])
def test_commands_outside_the_allowlist_are_refused(command):
    with pytest.raises(DbtInputError) as err:
        check_command(command)
    assert err.value.field == "command"


@pytest.mark.parametrize(
    "selector, problem",
    [
        ("-x", "starts with '-'"),
        ("fct_users --profiles-dir /tmp", "starts with '-'"),
        ("fct_users; drop", "';'"),
        ("$(whoami)", "'$'"),
        ("a\nb", "control character"),
        ("`id`", "'`'"),
    ],
)
def test_bad_selectors_are_refused_with_the_reason(selector, problem):
    with pytest.raises(DbtInputError) as err:
        check_selector("select", selector)
    assert problem in err.value.message


def test_the_manifest_is_parsed_once_into_frozen_nodes_and_a_graph():
    manifest = Manifest.from_dict(MANIFEST)
    assert (manifest.schema_version, manifest.dbt_version, manifest.project_name) == (12, "1.11.0", "shop")
    assert manifest.generated_at.year == 2026 and manifest.docs == {"shop.intro": "Hello"}
    stg = manifest.nodes["model.shop.stg_users"]
    assert stg.fqn == ("shop", "staging", "stg_users") and stg.patch_path == "models/staging/schema.yml"
    assert stg.materialization == "view" and stg.section == "nodes"
    assert manifest.nodes["test.shop.not_null_fct_users_id.abc"].test_name == "not_null"
    assert manifest.nodes["test.shop.not_null_fct_users_id.abc"].column_name == "id"
    assert manifest.nodes["source.shop.raw.users"].source_name == "raw"
    assert manifest.parents["model.shop.fct_users"] == ("model.shop.stg_users",)
    assert set(manifest.children["model.shop.fct_users"]) == {
        "test.shop.not_null_fct_users_id.abc", "test.shop.no_dupes", "unit_test.shop.fct_users.counts",
        "exposure.shop.dash",
    }  # fmt: skip
    with pytest.raises(FrozenInstanceError):
        stg.name = "other"
    with pytest.raises(TypeError):
        manifest.nodes["x"] = stg


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "not a dbt manifest"),
        (
            {"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v9.json"}},
            "v9 is not supported",
        ),
        ({"metadata": MANIFEST["metadata"], "nodes": []}, "must be an object"),
    ],
)
def test_manifests_the_portal_cannot_read_are_refused_with_a_reason(data, words):
    with pytest.raises(ManifestError, match=words):
        Manifest.from_dict(data)


def test_a_garbled_manifest_file_is_refused(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_path(path)


@pytest.mark.parametrize(
    ("selector", "exclude", "expected"),
    [
        ("fct_users", "", ["model.shop.fct_users", "test.shop.no_dupes",
                           "test.shop.not_null_fct_users_id.abc", "unit_test.shop.fct_users.counts"]),
        # Each criterion takes in the tests on what it selected, so the intersection keeps them (as dbt).
        ("+fct_users,resource_type:model", "", ["model.shop.fct_users", "model.shop.stg_users", "test.shop.no_dupes",
            "test.shop.not_null_fct_users_id.abc", "unit_test.shop.fct_users.counts"]),
        ("source:raw+1", "", ["model.shop.stg_users", "source.shop.raw.users", "test.shop.no_dupes"]),
        ("models/staging", "", ["model.shop.stg_users", "source.shop.raw.users", "test.shop.no_dupes"]),
        ("models/staging/schema.yml", "", ["model.shop.stg_users", "source.shop.raw.users", "test.shop.no_dupes"]),
        ("stg_users.sql", "", ["model.shop.stg_users", "test.shop.no_dupes"]),
        ("tag:night*", "stg_users", []),
        ("config.meta.owner:ann", "", ["model.shop.stg_users", "test.shop.no_dupes"]),
        ("config.enabled:TRUE,config.materialized:table", "", ["model.shop.fct_users",
            "test.shop.no_dupes", "test.shop.not_null_fct_users_id.abc", "unit_test.shop.fct_users.counts"]),
        ("config.severity:error", "", ["test.shop.not_null_fct_users_id.abc"]),
        ("test_name:not_*", "", ["test.shop.not_null_fct_users_id.abc"]),
        ("test_type:singular", "", ["test.shop.no_dupes"]),
        ("test_type:unit", "", ["unit_test.shop.fct_users.counts"]),
        ("exposure:shop.dash", "", ["exposure.shop.dash"]),
        ("package:this,resource_type:source", "", ["source.shop.raw.users"]),
        ("@stg_users", "resource_type:test", ["exposure.shop.dash", "model.shop.fct_users", "model.shop.stg_users",
            "source.shop.raw.users", "unit_test.shop.fct_users.counts"]),
        ("", "fct_users stg_users", ["exposure.shop.dash", "source.shop.raw.users"]),
        ("nope", "", []),
    ],
)  # fmt: skip
def test_selection_over_the_frozen_model(selector, exclude, expected):
    assert select_in_manifest(Manifest.from_dict(MANIFEST), selector, exclude) == expected


@pytest.mark.parametrize(
    ("selector", "words"),
    [
        ("result:error", '"result" is a dbt selector method the portal does not answer (supported: fqn, path'),
        ("bogus:x", '"bogus" is not a selector method'),
        ("@fct_users+", "cannot be combined"),
        ("resource_type:nope", "unknown resource type 'nope'"),
        ("path:/etc", "relative to the project root"),
    ],
)
def test_invalid_selectors_are_refused_on_their_field(selector, words):
    with pytest.raises(DbtSelectorError, match=re.escape(words)) as caught:
        select_in_manifest(Manifest.from_dict(MANIFEST), "fct_users", selector)
    assert caught.value.field == "exclude"


def test_every_module_of_dbtlib_loads_without_django():
    code = (
        "import importlib, pkgutil, sys, dbtlib\n"
        "names = [m.name for m in pkgutil.iter_modules(dbtlib.__path__)]\n"
        "for name in names: importlib.import_module('dbtlib.' + name)\n"
        "print(sorted(names), 'django' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "'invocation', 'launcher', 'manifest'" in result.stdout and "'selectors'" in result.stdout
    assert result.stdout.strip().endswith("False")


def test_vars_only_for_declared_keys_with_json_values():
    assert check_vars('{"a": [1, 2]}', {"a"}) == {"a": [1, 2]}
    with pytest.raises(DbtInputError, match="declares no var 'b'"):
        check_vars({"b": 1}, {"a"})
    with pytest.raises(DbtInputError, match="JSON object"):
        check_vars("[1]", {"a"})
    with pytest.raises(DbtInputError, match="not valid JSON"):
        check_vars("{a: 1}", {"a"})


@pytest.mark.parametrize("value", ["{{ run_query('x') }}", {"k": "{% set x = 1 %}"}, ["{# #}"], {"{{ k }}": 1}])
def test_vars_never_carry_jinja_that_dbt_would_render(value):
    with pytest.raises(DbtInputError, match="Jinja"):
        check_vars({"a": value}, {"a"})
    assert check_vars({"a": "{ not jinja }"}, {"a"}) == {"a": "{ not jinja }"}


def test_json_log_lines_become_events():
    line = json.dumps(
        {
            "info": {"name": "NodeStart", "level": "info", "ts": "2024-01-01T10:11:12.5Z", "msg": "hello"},
            "data": {"node_info": {"unique_id": "model.shop.fct_users"}},
        }
    )
    event = parse_line(line)
    assert event.name == "NodeStart" and event.node_info["unique_id"] == "model.shop.fct_users"
    assert event.render() == "10:11:12  hello"
    assert parse_line("Traceback (most recent call last):") is None


def test_partial_parse_state_ignores_the_runs_application_name(monkeypatch):
    """dbt hashes connection_info() into its partial-parse state; each run's own
    application_name must not change that hash, or every run parses in full."""
    from dbt.adapters.postgres.connections import PostgresCredentials

    monkeypatch.setattr(PostgresCredentials, "_connection_keys", PostgresCredentials._connection_keys)

    def credentials(application_name: str) -> PostgresCredentials:
        return PostgresCredentials(
            host="db", user="u", password="p", port=5432, database="w", schema="s", application_name=application_name
        )

    assert dict(credentials("portal-run-1").connection_info())["application_name"] == "portal-run-1"
    assert ignore_application_name_in_parse_state()
    assert list(credentials("portal-run-1").connection_info()) == list(credentials("portal-run-2").connection_info())
    assert credentials("portal-run-1").application_name == "portal-run-1"  # connections still carry it


def test_launcher_runs_without_the_partial_parse_patch_when_dbt_changes(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dbt.adapters.postgres.connections", None)
    assert not ignore_application_name_in_parse_state()
    assert "every run will parse in full" in capsys.readouterr().err
