"""The modules' import graph: no cycle, and the pipeline operations never reach up into the command modules."""
from __future__ import annotations

import ast
import graphlib
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_imports() -> dict[str, set[str]]:
    """Each module of provisioner/, steps/ and state/ -> the modules of those it imports at its top level.

    steps/ and state/ are installed as provisioner.steps and provisioner.state (pyproject.toml), so they
    are named so here."""
    names = {}
    for path in (ROOT / "provisioner").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for folder in ("steps", "state"):
        for path in (ROOT / folder).glob("*.py"):
            parts = ("provisioner", folder) + (() if path.stem == "__init__" else (path.stem,))
            names[".".join(parts)] = path
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


def test_nothing_imports_steps_or_state_as_top_level_packages():
    """Run from the repository, `import steps` would load a second copy of each module beside
    provisioner.steps (two step registries, two kinds tables): only the installed names are used."""
    stray = []
    for path in [*ROOT.glob("*/**/*.py"), *ROOT.glob("*.py")]:
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            stray += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("steps", "state")]
    assert stray == []


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


# Steps whose every resource is a kind's (provisioner/aws/converge.py): they declare what they want and call
# no AWS client themselves. A step joins this list once its last hand-written boto3 call moves into a kind.
DESCRIBED_STEPS = ("autoscaling", "ecs_services", "iam", "logs", "metrics_config", "nat_route", "opensearch",
                   "prometheus", "secret", "service_roles", "task_definitions")


def test_steps_that_describe_their_resources_call_no_aws_client():
    calls = []
    for step in DESCRIBED_STEPS:
        path = ROOT / "steps" / f"{step}.py"
        calls += [f"{path.relative_to(ROOT)}:{node.lineno}" for node in ast.walk(ast.parse(path.read_text()))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"]
    assert calls == []
