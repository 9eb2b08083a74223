"""DbtInvocation.prepare lays out one invocation's own target and log paths and builds its argv,
without starting dbt."""

from __future__ import annotations

from pathlib import Path

from dbtlib.invocation import DbtInvocation

PROJECTS = Path(__file__).resolve().parents[2] / "dbt_projects"


def test_prepare_gives_each_invocation_its_own_paths_seeded_with_partial_parse(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "partial_parse.msgpack").write_bytes(b"seed")
    common = {"project_dir": PROJECTS / "inventory_transforms", "profiles_dir": PROJECTS, "work_dir": tmp_path / "run"}
    first = DbtInvocation.prepare("build", parse_state_dir=state, select="+fct_users tag:x", **common)
    second = DbtInvocation.prepare("docs generate", index=1, **common)
    assert first.target_path == tmp_path / "run" / "target" and second.target_path == tmp_path / "run" / "target-2"
    assert (first.target_path / "partial_parse.msgpack").read_bytes() == b"seed"
    assert not (second.target_path / "partial_parse.msgpack").exists()
    assert first.argv[:1] == ["build"] and first.argv[first.argv.index("--select") + 1 :][:2] == ["+fct_users", "tag:x"]
    assert second.argv[:2] == ["docs", "generate"] and "--select" not in second.argv
    assert first.display.startswith("$ dbt build --log-format json")


def test_a_ci_invocation_compares_with_and_defers_to_the_state_it_is_given(tmp_path):
    common = {"project_dir": PROJECTS / "inventory_transforms", "profiles_dir": PROJECTS, "work_dir": tmp_path / "run"}
    production = tmp_path / "production" / "target"
    invocation = DbtInvocation.prepare("build", select="state:modified+", state=production, defer=True, **common)
    assert invocation.argv[invocation.argv.index("--state") + 1] == str(production)
    assert "--defer" in invocation.argv and "--favor-state" not in invocation.argv
    assert invocation.display.endswith(f"--state {production} --defer")
