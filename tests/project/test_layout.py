"""The suite's own layout (docs/design.md, "Tests"): every test module sits in the folder
of the layer it tests, and test modules share code through ``tests/support`` only, never
by importing one another."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

TESTS = ROOT / "tests"
LAYERS = {
    "core",
    "transport",
    "stream",
    "client",
    "sinks",
    "browser",
    "redis",
    "pipeline",
    "cli",
    "emulator",
    "project",
}


def test_every_test_module_is_in_a_layer_folder() -> None:
    misplaced = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("test_*.py")
        if path.parent.parent != TESTS or path.parent.name not in LAYERS
    ]
    assert misplaced == []
    assert {path.name for path in TESTS.iterdir() if path.is_dir()} >= LAYERS


def imported_test_modules(path: Path) -> list[str]:
    """The modules named ``test_*`` that ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [
            f"{path.name}:{node.lineno} imports {name}"
            for name in names
            if any(part.startswith("test_") for part in name.split("."))
        ]
    return found


def test_no_test_module_imports_another() -> None:
    found = [line for path in TESTS.rglob("*.py") for line in imported_test_modules(path)]
    assert found == []


def test_an_import_of_a_test_module_is_found(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text("import os\nfrom test_relay import Browser\nimport tests.sinks.test_pump\n")
    assert imported_test_modules(module) == [
        "test_x.py:2 imports test_relay",
        "test_x.py:3 imports tests.sinks.test_pump",
    ]
