"""Imports point one way, down LAYERS: each package may import those below it, never one above.
`operations` (the health endpoints) sits on top; `dbt_cloud` (the dbt Cloud facade over jobs
and runs) is imported by nothing but the wiring; `kernel` (request errors, database and security
helpers) and `dbtlib` (the dbt library) are at the bottom and import no app. `dbtlib` imports
only the standard library, dbt and YAML: no Django. `transformation_portal` is the wiring: it may
import every package, and no package imports it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["operations", "dbt_cloud", "search", "entities", "runs", "lineage", "accounts", "audit", "kernel", "dbtlib"]
LIBRARY_MAY_IMPORT = sys.stdlib_module_names | {"dbt", "yaml", "dbtlib"}


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
    own, top = importer.split(".")[0], module.split(".")[0]
    if own == "dbtlib" and top not in LIBRARY_MAY_IMPORT:
        return True
    if top == "transformation_portal":
        return True
    return top in LAYERS and LAYERS.index(top) < LAYERS.index(own)


def test_packages_import_only_those_below_them():
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for package in LAYERS
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, module in _imported_modules(path)
        if _refused(".".join(path.relative_to(ROOT).with_suffix("").parts), module)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("importer", "module", "refused"),
    [
        ("audit.views", "accounts.models.Capability", True),
        ("accounts.views", "audit.models.AuditEvent", False),
        ("lineage.ingest", "dbtlib.manifest.Manifest", False),
        ("lineage.ingest", "runs.models.Run", True),
        ("dbtlib.launcher", "runs.models.Run", True),
        ("dbtlib.selectors", "kernel.errors.RequestError", True),
        ("dbtlib.launcher", "django.conf.settings", True),
        ("kernel.errors", "dbtlib.errors.DbtInputError", False),
        ("runs.worker", "kernel.errors.RequestError", False),
        ("runs.worker", "transformation_portal.settings", True),
        ("runs.services", "django.db.transaction", False),
        ("entities.views", "operations.readiness.run_checks", True),
    ],
)
def test_the_rule_itself(importer, module, refused):
    assert _refused(importer, module) is refused
