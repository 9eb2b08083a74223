"""runs/dbt/ is Django-free: argv building, selector checks, event parsing, no database."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from runs.dbt.commands import build_argv, check_command, check_vars
from runs.dbt.events import parse_line
from runs.dbt.launcher import ignore_application_name_in_parse_state
from runs.dbt.manifest import unmatched_terms
from runs.dbt.selectors import check_selector
from transformation_portal.errors import RequestError

MANIFEST = {
    "nodes": {
        "model.shop.stg_users": {
            "name": "stg_users",
            "resource_type": "model",
            "package_name": "shop",
            "fqn": ["shop", "staging", "stg_users"],
            "original_file_path": "models/staging/stg_users.sql",
            "tags": ["nightly"],
            "config": {"materialized": "view"},
        },
        "model.shop.fct_users": {
            "name": "fct_users",
            "resource_type": "model",
            "package_name": "shop",
            "fqn": ["shop", "core", "fct_users"],
            "original_file_path": "models/core/fct_users.sql",
            "tags": [],
            "config": {"materialized": "table"},
        },
    },
    "sources": {
        "source.shop.raw.users": {
            "name": "users",
            "source_name": "raw",
            "resource_type": "source",
            "package_name": "shop",
            "fqn": ["shop", "raw", "users"],
        }
    },
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


@pytest.mark.parametrize("command", ["run-operation", "deps", "init", "clean", "show", "build; rm -rf /", "debug"])
def test_commands_outside_the_allowlist_are_refused(command):
    with pytest.raises(RequestError) as err:
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
    with pytest.raises(RequestError) as err:
        check_selector("select", selector)
    assert problem in err.value.message


def test_selectors_resolve_against_the_manifest():
    assert unmatched_terms(MANIFEST, "+fct_users stg_users+ tag:nightly source:raw.users path:models/core") == []
    assert unmatched_terms(MANIFEST, "staging.* config.materialized:table,resource_type:model") == []
    assert unmatched_terms(MANIFEST, "fct_users nope tag:weekly state:modified") == [
        "nope",
        "tag:weekly",
        "state:modified",
    ]


def test_vars_only_for_declared_keys_with_json_values():
    assert check_vars('{"a": [1, 2]}', {"a"}) == {"a": [1, 2]}
    with pytest.raises(RequestError, match="declares no var 'b'"):
        check_vars({"b": 1}, {"a"})
    with pytest.raises(RequestError, match="JSON object"):
        check_vars("[1]", {"a"})
    with pytest.raises(RequestError, match="not valid JSON"):
        check_vars("{a: 1}", {"a"})


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
