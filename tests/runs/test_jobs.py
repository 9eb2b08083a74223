"""Job runs (a run with steps), rerun from failure and environments, executed by the worker's
code in the test process against the real warehouse, with real dbt."""

from __future__ import annotations

import re

import pytest
import yaml

from audit.models import AuditEvent
from kernel.errors import RequestError
from lineage.models import Snapshot
from runs.environments import create_environment
from runs.jobs import create_job, retry_run, trigger_job
from runs.models import Environment, NodeResult, Run, RunState, StepState
from runs.worker import execute_run

pytestmark = pytest.mark.usefixtures("transactional_db", "dbt_projects_dir")


def executed(run: Run) -> Run:
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def log_lines(run: Run) -> list[str]:
    return "\n".join(chunk.text for chunk in run.log_chunks.order_by("first_line")).split("\n")


def nodes_by_step(run: Run) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for step, name, status in run.node_results.values_list("step", "name", "status"):
        found.setdefault(step, {})[name] = status
    return found


def test_a_two_step_job_runs_each_step_with_its_own_log_section_and_nodes(operator, gate):
    gate.open()
    second_step = "dbt run --selector just_d --indirect-selection cautious --fail-fast"  # selectors.yml's
    job = create_job(
        actor=operator, source="api", project="chain", name="two", steps=["dbt run --select a", second_step]
    )
    run = executed(trigger_job(job, actor=operator, source="api", cause="nightly"))
    assert run.state == RunState.SUCCESS, run.reason
    steps = list(run.steps.order_by("index"))
    assert [(s.name, s.state, s.exit_code) for s in steps] == [
        ("dbt run --select a", StepState.SUCCESS, 0),
        (second_step, StepState.SUCCESS, 0),
    ]
    assert nodes_by_step(run) == {1: {"a": "success"}, 2: {"d": "success"}}
    lines = log_lines(run)
    first, second = (lines[s.log_first_line : s.log_end_line] for s in steps)
    assert first[0] == "── step 1 of 2: dbt run --select a" and any("--select a" in line for line in first)
    assert second[0] == f"── step 2 of 2: {second_step}" and not any("--select a" in line for line in second)
    assert any("--selector just_d --indirect-selection cautious --fail-fast" in line for line in second)
    assert [s.invocation for s in steps] == [1, 2]
    assert set(run.artifacts.filter(name="run_results.json").values_list("invocation", flat=True)) == {1, 2}
    assert AuditEvent.objects.get(action="run.trigger", target_id=str(run.pk)).reason == "nightly"


def test_a_failed_step_stops_the_rest_and_a_rerun_from_failure_runs_only_what_failed(operator, gate):
    steps = ["dbt run --selector every_model --indirect-selection empty", "dbt run -s d"]
    job = create_job(actor=operator, source="api", project="chain", name="all", steps=steps)
    overrides = {"schema": "pr_42", "target": "ci", "threads": 2}
    failed = executed(trigger_job(job, actor=operator, source="api", timeout_seconds=300, **overrides))
    assert failed.state == RunState.FAILED, failed.reason
    assert [s.state for s in failed.steps.order_by("index")] == [StepState.FAILED, StepState.SKIPPED]
    assert nodes_by_step(failed)[1] == {"a": "success", "b": "error", "c": "skipped", "d": "success"}

    gate.open()
    retry = retry_run(failed, actor=operator, source="web")
    assert (retry.retry_of_id, retry.job_id) == (failed.pk, job.pk)
    # the failed nodes are rebuilt where the run wrote them, not in the environment's schema
    assert (retry.schema, retry.target, retry.threads, retry.timeout_seconds) == ("pr_42", "ci", 2, 300)
    # the failed nodes by name instead of the selector, the step's other flags kept
    assert [s.name for s in retry.steps.order_by("index")] == [
        "dbt run --select b c --indirect-selection empty",
        "dbt run -s d",
    ]
    assert retry.steps.get(index=1).options == {"indirect_selection": "empty"}
    retry = executed(retry)
    assert retry.state == RunState.SUCCESS, retry.reason
    assert nodes_by_step(retry) == {1: {"b": "success", "c": "success"}, 2: {"d": "success"}}
    assert AuditEvent.objects.filter(action="run.retry", target_id=str(retry.pk)).exists()
    with pytest.raises(RequestError, match="nothing to rerun"):
        retry_run(retry, actor=operator, source="web")


def test_the_freshness_step_does_not_stop_the_job(operator, gate):
    gate.open()
    job = create_job(
        actor=operator, source="api", project="sleepy", name="fresh", steps=["dbt run -s fast"],
        run_source_freshness=True,
    )  # fmt: skip
    run = trigger_job(job, actor=operator, source="api", steps=["dbt run -s broken", "dbt run -s fast"])
    run = executed(run)
    names = [(s.name, s.state) for s in run.steps.order_by("index")]
    assert names[0][0] == "dbt source freshness" and names[1:] == [
        ("dbt run -s broken", StepState.FAILED),
        ("dbt run -s fast", StepState.SKIPPED),
    ]
    assert run.state == RunState.FAILED


def test_column_types_outlive_runs_without_docs_and_a_run_makes_one_snapshot(client, operator, viewer):
    """The catalog of a docs step stays until a newer one comes; each run, however many steps,
    is one lineage snapshot (so LINEAGE_KEEP_SNAPSHOTS counts runs)."""
    client.force_login(viewer)
    numbers_type = '<tr id="column-n" data-column="n"><td><code>n</code></td><td>integer</td>'
    jobs = {
        name: create_job(actor=operator, source="api", project="warns", name=name, steps=steps)
        for name, steps in (
            ("docs", ["dbt build", "dbt docs generate"]),
            ("build", ["dbt build"]),
            ("four", ["dbt seed", "dbt run", "dbt test", "dbt docs generate"]),
        )
    }
    docs = executed(trigger_job(jobs["docs"], actor=operator, source="api"))
    assert numbers_type in client.get("/lineage/warns/nodes/model.warns.numbers/").content.decode()
    generated = Snapshot.objects.get(run_id=docs.pk).catalog_generated_at
    build = executed(trigger_job(jobs["build"], actor=operator, source="api"))
    current = Snapshot.objects.get(project="warns", is_current=True)
    assert (current.run_id, current.catalog_generated_at) == (build.pk, generated)
    page = client.get("/lineage/warns/nodes/model.warns.numbers/").content.decode()
    assert numbers_type in page and f'<time datetime="{generated.isoformat()}">' in page
    four = executed(trigger_job(jobs["four"], actor=operator, source="api"))
    assert [r.state for r in (docs, build, four)] == [RunState.SUCCESS] * 3, four.reason
    assert list(Snapshot.objects.filter(project="warns").order_by("pk").values_list("run_id", flat=True)) == [
        docs.pk, build.pk, four.pk
    ]  # fmt: skip


def test_bad_steps_are_refused_naming_the_step_and_nothing_is_saved(operator):
    for steps, words in [
        (["dbt run-operation drop_all"], "not an allowed dbt command"),
        (["dbt run --profiles-dir /etc"], "not a flag a step may use"),
        (["dbt run --select nope"], "matches no node"),
        (
            ["dbt run --selector nightly"],
            "the project has no selector 'nightly' (selectors.yml defines: just_d, every_model)",
        ),
        (["dbt run --selector just_d --select a"], "--selector and --select cannot be used together"),
        (["dbt run --target-path elsewhere"], "'--target-path' is not a flag a step may use: it would point dbt"),
        (["dbt run --resource-type model"], "dbt run does not take --resource-type"),
        (["dbt build --resource-type exposure"], "no node is left of the resource types asked for in project chain"),
        (["rm -rf /"], "must start with 'dbt'"),
        ([], "one or more"),
    ]:
        with pytest.raises(RequestError, match=re.escape(words)) as refused:
            create_job(actor=operator, source="api", project="chain", name="bad", steps=steps)
        assert refused.value.field == "steps"
    assert not AuditEvent.objects.filter(action="job.create").exists()


def test_the_api_job_run_takes_dbt_clouds_names_and_refuses_under_them(api_client, operator, queued):
    """POST /api/v1/jobs/{id}/run/ speaks dbt Cloud's `*_override` names (trigger_job takes the
    portal's): a refused override is named as it was sent, the run's own fields as the run's."""
    job = create_job(actor=operator, source="api", project="chain", name="api", steps=["dbt run"])
    api_client.force_authenticate(operator)
    url = f"/api/v1/jobs/{job.pk}/run/"
    for body, field, words in [
        ({"schema_override": "RAW"}, "schema_override", "schema_override may not be a protected schema"),
        ({"schema_override": "a; drop"}, "schema_override", "schema_override must be a schema name"),
        ({"steps_override": ["dbt run-operation x"]}, "steps_override", "step 'dbt run-operation x': "),
        ({"timeout_seconds_override": 10**9}, "timeout_seconds", "timeout_seconds must be between 1 and "),
    ]:
        answer = api_client.post(url, body, format="json")
        assert answer.status_code == 400 and answer.json()["field"] == field, answer.json()
        assert answer.json()["detail"].startswith(words)
    assert not Run.objects.exists()
    body = {
        "steps_override": ["dbt run -s d"], "threads_override": 2, "timeout_seconds_override": 300,
        "schema_override": "pr_1", "generate_docs_override": True,
    }  # fmt: skip
    answer = api_client.post(url, body, format="json")
    assert answer.status_code == 202, answer.json()
    run = Run.objects.get(pk=answer.json()["id"])
    assert (run.schema, run.threads, run.timeout_seconds) == ("pr_1", 2, 300)
    assert [s.name for s in run.steps.order_by("index")] == ["dbt run -s d", "dbt docs generate"]


def test_a_run_reads_the_profile_generated_from_its_environment_and_never_writes_the_password(
    operator, admin_user, gate, monkeypatch, tmp_path
):
    gate.open()
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pw\n")
    monkeypatch.setenv("DBT_ENV_SECRET_CHAIN_PW_FILE", str(secret))
    environment = create_environment(
        actor=admin_user, source="api", project="chain", name="prod", target_name="prod",
        password_env="DBT_ENV_SECRET_CHAIN_PW", threads=2,
    )  # fmt: skip
    job = create_job(
        actor=operator, source="api", project="chain", name="p", steps=["dbt run -s a"], environment=environment.pk
    )
    run = executed(trigger_job(job, actor=operator, source="api"))
    assert run.state == RunState.SUCCESS, run.reason
    assert any("environment prod: dbt target prod" in line for line in log_lines(run))
    assert not any("s3cret-pw" in line for line in log_lines(run))
    assert not any("s3cret-pw" in str(a.after) for a in AuditEvent.objects.all())

    monkeypatch.delenv("DBT_ENV_SECRET_CHAIN_PW_FILE")
    run = executed(trigger_job(job, actor=operator, source="api"))
    assert run.state == RunState.ERROR and "reads its password from DBT_ENV_SECRET_CHAIN_PW" in run.reason


def test_a_dropped_in_project_gets_a_dev_environment_and_its_own_profile_name(operator, gate, settings):
    gate.open()
    assert not Environment.objects.filter(project="chain").exists()
    job = create_job(actor=operator, source="api", project="chain", name="d", steps=["dbt run -s a"])
    assert (job.environment.name, job.environment.is_default) == ("dev", True)
    run = trigger_job(job, actor=operator, source="api")
    execute_run(run.pk)
    assert Run.objects.get(pk=run.pk).state == RunState.SUCCESS
    assert NodeResult.objects.filter(run=run, name="a", status="success").exists()


def test_the_generated_profile_names_the_projects_profile_and_reads_the_password_from_the_environment(tmp_path):
    from dbtlib.profiles import write_profile

    path = write_profile(
        tmp_path, profile="chain_warehouse", target="prod",
        connection={"host": "db", "port": 5433, "user": "u", "dbname": "w", "schema": "s"}, threads=3,
    )  # fmt: skip
    profile = yaml.safe_load(path.read_text())
    output = profile["chain_warehouse"]["outputs"]["prod"]
    assert profile["chain_warehouse"]["target"] == "prod"
    assert (output["host"], output["port"], output["threads"]) == ("db", 5433, 3)
    assert output["password"] == "{{ env_var('DBT_ENV_SECRET_PASSWORD', '') }}"
