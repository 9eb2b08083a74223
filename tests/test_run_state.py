"""A run's state has one owner: its queryset's transitions in runs/models.py (claim, start,
finish, cancel, reap, ended at creation), each a conditional update. Anywhere else in the
packages, an `.update(state=…)` or `.create(state=…)` is refused, unless it is plainly another
model's (a capitalised name other than `Run` heads the chain, e.g. `RunStep.objects…`): a
queryset held in a variable may be a run's. Tests and benchmarks seed runs as they please."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_layers import LAYERS, ROOT

OWNER = Path("runs/models.py")
WRITES = {"update", "create"}


def _head(node: ast.expr) -> str | None:
    """The name a chain such as `Run.objects.filter(…).update` starts from, if any."""
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _state_writes(source: str) -> list[int]:
    """Lines of the calls in `source` that may write a run's state."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES):
            continue
        if not any(keyword.arg == "state" for keyword in node.keywords):
            continue
        head = _head(node.func.value)
        if head is not None and head[:1].isupper() and head != "Run":
            continue
        found.append(node.lineno)
    return found


def test_only_the_run_queryset_writes_a_runs_state():
    found = [
        f"{path.relative_to(ROOT)}:{line} writes a run's state; use a transition of RunQuerySet ({OWNER})"
        for package in [*LAYERS, "transformation_portal"]
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.relative_to(ROOT) != OWNER and "migrations" not in path.parts
        for line in _state_writes(path.read_text())
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        ("Run.objects.filter(pk=1, state='queued').update(state='starting')", True),
        ("Run.objects.create(project='p', state='skipped')", True),
        ("queued = Run.objects.filter(pk=1)\nqueued.update(state='error')", True),
        ("job.runs.filter(pk=1).update(state='error')", True),
        ("RunStep.objects.filter(pk=1).update(state='running')", False),
        ("Run.objects.filter(pk=1).update(reason='')", False),
        ("Run.objects.claim(1, worker='w', worker_pid=2)", False),
        ("Run.objects.create_ended(state='skipped', reason='', at=now)", False),
    ],
)
def test_the_rule_itself(source, refused):
    assert bool(_state_writes(source)) is refused
