"""The package's shape (docs/stages.md): no import cycles, nothing below the façade imports it, no
private names across modules, no module over ~600 lines. The layer order itself is the
import-linter contract in pyproject.toml (``lint-imports``, run by .ci/run)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aupipe"
MAX_LINES = 620  # "no module over ~600 lines"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # imports under ``if TYPE_CHECKING:`` only name types; they never run, so they make no cycle
    return grimp.build_graph("aupipe", include_external_packages=False, exclude_type_checking_imports=True)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def test_no_import_cycles(graph: grimp.ImportGraph) -> None:
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.find_shortest_chain(importer=imported, imported=module):
                cycles.append((module, imported))
    assert cycles == []


def test_nothing_below_the_facade_imports_it(graph: grimp.ImportGraph) -> None:
    above = ("aupipe.__main__", "aupipe.cli")  # the CLI only parses and calls the public API
    offenders = sorted(m for m in graph.find_modules_that_directly_import("aupipe") if not m.startswith(above))
    assert offenders == []


def _private_imports(path: Path, known: set[str]) -> list[str]:
    """``from aupipe.x import _name`` and ``alias._name`` where ``alias`` is an aupipe module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aupipe"):
            for name in node.names:
                if name.name.startswith("_") and not name.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno}: from {node.module} import {name.name}")
                if f"{node.module}.{name.name}" in known:
                    aliases.add(name.asname or name.name)
        elif isinstance(node, ast.Import):
            for name in node.names:
                if name.name.startswith("aupipe") and name.asname:
                    aliases.add(name.asname)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):  # fmt: skip
            found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_private_names_across_modules() -> None:
    modules = _modules()
    found = [hit for path in modules.values() for hit in _private_imports(path, set(modules))]
    assert found == []


def test_no_module_over_about_600_lines() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _aupipe_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) of every ``aupipe`` import in ``path``, at any depth."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aupipe":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names if alias.name.split(".")[0] == "aupipe"]
    return found


@pytest.mark.parametrize(
    "path", sorted((PACKAGE.parent / "benchmarks").glob("*.py")) + sorted((PACKAGE.parent / "scripts").glob("*.py")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)  # fmt: skip
def test_benchmarks_and_scripts_import_what_exists(path: Path) -> None:
    """Benchmarks are not run by CI; their imports (also those inside functions) must still resolve."""
    import importlib

    missing = []
    for line, module, name in _aupipe_imports(path):
        try:
            imported = importlib.import_module(module)
        except ImportError as err:
            missing.append(f"{path.name}:{line}: {module} ({err})")
            continue
        if name is not None and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{path.name}:{line}: from {module} import {name}")
    assert missing == []
