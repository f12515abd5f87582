"""The modules' import graph: no cycle, and the pipeline operations never reach up into the command modules."""
from __future__ import annotations

import ast
import graphlib
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_imports() -> dict[str, set[str]]:
    """Each module of provisioner/, steps/ and state/ -> the modules of those it imports at its top level."""
    files = [*(ROOT / "provisioner").rglob("*.py"), *(ROOT / "steps").glob("*.py"), *(ROOT / "state").glob("*.py")]
    names = {}
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        imported: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        graph[name] = {other for other in imported if other in names and other != name}
    return graph


def test_every_module_imports():
    """What the graph names exists: an import of a moved name fails here, not in the command that needs it."""
    for module in sorted(module_imports()):
        if not module.endswith("__main__"):  # runs the CLI
            importlib.import_module(module)


def test_no_module_imports_one_that_imports_it_back():
    cycle = None
    try:
        tuple(graphlib.TopologicalSorter(module_imports()).static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
    assert cycle is None


def test_the_pipeline_operations_and_the_engine_import_no_command_module():
    graph = module_imports()
    for module in ("provisioner.operations", "provisioner.engine", "provisioner.cli_support"):
        assert not [other for other in graph[module] if other.startswith("provisioner.commands")], module
