"""The README a newcomer reads: short, its pictures taken by the browser tests, its curl
examples run as written against a live portal. (Links are checked with every Markdown file
in tests/test_repository.py.)"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.entities.conftest import entity_types  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SCREENSHOTS = DOCS / "screenshots"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
# tests/e2e/conftest.py's helper, called with a literal name.
SCREENSHOT_CALL = re.compile(r"\bscreenshot\(\s*\w+\s*,\s*\"([\w-]+)\"\s*\)")
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
# The two placeholders the README documents, as it writes them.
PORTAL_LINE = "export PORTAL=http://127.0.0.1:8000"
TOKEN_LINE = re.compile(r"^ *export TOKEN=\$\(\.venv/bin/python manage\.py (issue_token [^|)]+)\| tail -n 1\)$", re.M)
BLOCK_END = "\x1e"  # printed between two blocks' outputs


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def pictures_the_browser_tests_take() -> set[str]:
    return {
        name for path in (ROOT / "tests" / "e2e").glob("*.py") for name in SCREENSHOT_CALL.findall(path.read_text())
    }


def test_the_readme_is_short_and_leads_to_the_reference():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert "](docs/README.md)" in text
    for command in ("`make run`", "`make test`"):
        assert command in text


def test_every_picture_shown_exists_and_a_browser_test_takes_it():
    taken = pictures_the_browser_tests_take()
    assert {"login", "dashboard", "run", "lineage", "entity", "approvals", "audit"} <= taken
    shown = set()
    for path in markdown_files():
        for target in IMAGE.findall(path.read_text()):
            picture = (path.parent / target).resolve()
            assert picture.parent == SCREENSHOTS, f"{path.relative_to(ROOT)}: {target} is not under docs/screenshots/"
            assert picture.suffix == ".png" and picture.stem in taken, (
                f"{path.relative_to(ROOT)}: no browser test takes {target}"
            )
            assert picture.is_file(), f"{path.relative_to(ROOT)}: {target} missing (make screenshots)"
            shown.add(picture.stem)
    assert shown, "the README shows no screenshot"
    # Nothing stale: every committed picture is one a test still takes.
    assert {p.stem for p in SCREENSHOTS.glob("*.png")} == taken


def json_answers(output: str) -> list:
    decoder, answers, position = json.JSONDecoder(), [], 0
    output = output.strip()
    while position < len(output):
        answer, position = decoder.raw_decode(output, position)
        answers.append(answer)
        while position < len(output) and output[position].isspace():
            position += 1
    return answers


@pytest.mark.django_db(transaction=True)
def test_the_readme_curl_examples_run_as_written(live_server, roles, entity_types, dbt_projects_dir):  # noqa: F811
    """Every ```sh block of the README, in order, in one shell, as a user at `make run` would
    paste them: `$PORTAL` is the live test server, `$TOKEN` what the README's own
    `manage.py issue_token` line prints for the demo's `operator`."""
    from django.contrib.auth.models import Group, User

    from audit.models import AuditEvent
    from runs.models import Run

    text = README.read_text()
    assert PORTAL_LINE in text
    operator = User.objects.create_user("operator", "operator@example.com", "x")
    operator.groups.add(Group.objects.get(name="operator"))
    printed = io.StringIO()
    call_command(*shlex.split(TOKEN_LINE.search(text).group(1)), stdout=printed)
    token = printed.getvalue().splitlines()[-1]

    blocks = SH_BLOCK.findall(text)
    assert len(blocks) == 4
    script = f"printf '{BLOCK_END}'\n".join(blocks)
    env = {**os.environ, "PORTAL": live_server.url, "TOKEN": token}
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (entities,), (run, log), (request,), (audit,) = [json_answers(part) for part in out.stdout.split(BLOCK_END)]

    assert {e["name"]: e["mode"] for e in entities} == {"users": "rules", "applications": "rules"}
    assert run["project"] == "inventory_transforms" and run["command"] == "build"
    assert run["state"] == "queued" and run["triggered_by"] == "operator" and run["source"] == "api"
    assert Run.objects.get().pk == run["id"]
    assert log["state"] == "queued" and log["final"] is False and log["lines"] == []
    assert request["entity"] == "applications" and request["mode"] == "shadow"
    assert request["status"] == "pending" and request["requested_by"] == "operator"
    assert [row["action"] for row in audit["results"]] == list(
        AuditEvent.objects.filter(actor_username="operator", source="api")
        .order_by("-id")
        .values_list("action", flat=True)
    )
    assert {"entity.mode_request.create", "run.trigger"} <= {row["action"] for row in audit["results"]}
