"""The package's layers: the core and its data import without the training companion (contrib)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fame_aug"


def imported_modules(tree: ast.AST) -> list[tuple[str, bool]]:
    """``(module, at_top_level)`` for every import in ``tree``."""
    top = {id(node) for node in getattr(tree, "body", [])}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
    return found


def test_the_core_imports_without_contrib() -> None:
    code = (
        "import fame_aug, fame_aug.data, fame_aug.visualize, sys; "
        "print([m for m in sys.modules if m.startswith('fame_aug.contrib')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_only_the_command_lines_subcommands_import_contrib() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "contrib":
            continue
        for module, at_top_level in imported_modules(ast.parse(path.read_text())):
            if module.startswith("fame_aug.contrib"):
                assert relative == Path("cli.py") and not at_top_level, f"{relative} imports {module}"
