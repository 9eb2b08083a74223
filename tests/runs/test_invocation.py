"""DbtInvocation drives real dbt through the real warm launcher, with no database of the
portal's: work directories, argv, streamed JSON lines, exit codes, artifacts."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from dbtlib.errors import DbtError
from dbtlib.invocation import DbtInvocation
from dbtlib.launcher import DbtExit, Launcher
from dbtlib.project import parse_project

PROJECTS = Path(__file__).resolve().parents[2] / "dbt_projects"


@pytest.fixture(scope="module")
def launcher():
    launcher = Launcher()
    yield launcher
    if launcher._proc is not None:
        launcher._proc.kill()


def _run(invocation: DbtInvocation, launcher: Launcher, env: dict[str, str]) -> list[str]:
    invocation.start(launcher, env)
    return [line for line in invocation.lines() if line]


def test_a_real_ls_streams_json_lines_and_keeps_its_parse_state(tmp_path, launcher, warehouse_env):
    invocation = DbtInvocation.prepare(
        "ls",
        project_dir=PROJECTS / "inventory_transforms",
        profiles_dir=PROJECTS,
        work_dir=tmp_path / "run",
        select="fct_users",
    )
    lines = _run(invocation, launcher, warehouse_env)
    messages = [json.loads(line)["info"]["msg"] for line in lines if line.startswith("{")]
    assert "inventory_transforms.core.fct_users" in messages
    assert invocation.exit_code == DbtExit.SUCCESS
    manifest = invocation.manifest()
    assert manifest is not None and "model.inventory_transforms.fct_users" in manifest.nodes
    assert invocation.run_results() == []  # ls writes no run_results.json
    invocation.keep_parse_state(tmp_path / "state", tag="1")
    assert {p.name for p in (tmp_path / "state").iterdir()} == {"manifest.json", "partial_parse.msgpack"}


def test_a_project_that_does_not_parse_ends_with_exit_error(tmp_path, launcher, warehouse_env):
    broken = tmp_path / "broken"
    shutil.copytree(PROJECTS / "inventory_transforms", broken, ignore=shutil.ignore_patterns("target", "logs"))
    (broken / "models" / "core" / "fct_users.sql").write_text("select {{ ref('no_such_model') }}")
    invocation = DbtInvocation.prepare("build", project_dir=broken, profiles_dir=PROJECTS, work_dir=tmp_path / "run")
    lines = _run(invocation, launcher, warehouse_env)
    assert invocation.exit_code == DbtExit.ERROR
    assert any("no_such_model" in line for line in lines)


def test_parse_project_failure_carries_command_exit_code_and_dbt_output(tmp_path, warehouse_env):
    broken = tmp_path / "broken"
    shutil.copytree(PROJECTS / "inventory_transforms", broken, ignore=shutil.ignore_patterns("target", "logs"))
    (broken / "models" / "core" / "fct_users.sql").write_text("select {{ ref('no_such_model') }}")
    with pytest.raises(DbtError) as raised:
        parse_project(broken, PROJECTS, tmp_path / "state", warehouse_env)
    assert raised.value.command == "parse" and raised.value.exit_code not in (None, 0)
    assert "no_such_model" in raised.value.message
    assert not (tmp_path / "state" / "manifest.json").exists()


def test_the_launchers_children_die_when_the_workers_pipe_closes(tmp_path, warehouse_env):
    """F2: a worker that dies (its end of the pipe closes) leaves no dbt behind."""
    from dbtlib.launcher import group_alive, signal_group
    from tests.conftest import wait_until

    sleepy = Path(__file__).resolve().parent / "projects" / "sleepy"
    invocation = DbtInvocation.prepare(
        "run",
        project_dir=sleepy,
        profiles_dir=PROJECTS,
        work_dir=tmp_path / "run",
        select="slow",
        vars={"sleep_seconds": 600},
    )
    launcher = Launcher()
    process = invocation.start(launcher, warehouse_env)
    try:
        wait_until(lambda: "slow" in invocation.output_file.read_text(), "dbt to start the slow model")
        launcher._proc.stdin.close()  # what a worker's death does to the pipe
        wait_until(lambda: not group_alive(process.pid), "the launcher to stop dbt's process group", timeout=60)
        assert launcher._proc.wait(timeout=30) == 0
    finally:
        signal_group(process.pid, signal.SIGKILL)
        launcher._proc.kill()
