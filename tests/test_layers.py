"""Imports point one way: operations → orchestration → entities → runs → lineage → accounts →
audit. Each app may import the apps to its right, never to its left (`operations`, the health
endpoints, sits on top: nothing imports it; `orchestration`, dbt Cloud's API over jobs and runs,
is imported by nothing but the wiring). `dbtlib` is a Django-free library any app may use (and it imports no
app itself); `transformation_portal` is the wiring that may import every app, while apps may
import only its `errors`, `db` and `security` modules (they import no app)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["operations", "orchestration", "entities", "runs", "lineage", "accounts", "audit"]
LIBRARY = "dbtlib"
SHARED = {"kernel.errors", "kernel.db", "kernel.security"}


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _refused(importer: str, module: str) -> bool:
    """Whether module `importer` may not import `module` (a dotted name, maybe a symbol)."""
    top = module.split(".")[0]
    in_library = importer == LIBRARY or importer.startswith(LIBRARY + ".")
    if top == "transformation_portal":
        return not any(module == shared or module.startswith(shared + ".") for shared in SHARED)
    if top not in LAYERS:
        return False  # the standard library, Django, third parties
    if module == LIBRARY or module.startswith(LIBRARY + "."):
        return False
    if in_library:
        return True  # the library imports no app
    return LAYERS.index(top) < LAYERS.index(importer.split(".")[0])


def _violations() -> list[str]:
    found = []
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")):
            importer = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for line, module in _imported_modules(path):
                if _refused(importer, module):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_apps_import_only_to_their_right():
    assert _violations() == []


@pytest.mark.parametrize(
    ("importer", "module", "refused"),
    [
        ("audit.views", "accounts.models.Capability", True),
        ("accounts.views", "audit.models.AuditEvent", False),
        ("lineage.ingest", "dbtlib.manifest.Manifest", False),
        ("lineage.ingest", "runs.models.Run", True),
        ("dbtlib.launcher", "runs.models.Run", True),
        ("runs.worker", "kernel.errors.RequestError", False),
        ("runs.worker", "transformation_portal.settings", True),
        ("entities.services", "runs.services.trigger_run", False),
        ("runs.services", "django.db.transaction", False),
        ("operations.readiness", "entities.services.warehouse", False),
        ("entities.views", "operations.readiness.run_checks", True),
        ("audit.services", "operations.views.healthz", True),
    ],
)
def test_the_rule_itself(importer, module, refused):
    assert _refused(importer, module) is refused
