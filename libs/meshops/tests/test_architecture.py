"""The import rules ARCHITECTURE.md states, checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import meshops

pytestmark = pytest.mark.unit

SRC = Path(meshops.__file__).parent


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) pairs a source file imports from meshops (name "" for `import x`)."""
    found: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("meshops"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(
                    (sub, "")
                    if (SRC.parent / sub.replace(".", "/")).exists()
                    or (SRC.parent / f"{sub.replace('.', '/')}.py").exists()
                    else (node.module, alias.name)
                )
        elif isinstance(node, ast.Import):
            found.update((a.name, "") for a in node.names if a.name.startswith("meshops"))
    return found


GRAPH = {_module(p): _imports(p) for p in SRC.rglob("*.py")}


def _importers(target: str) -> set[str]:
    return {
        m
        for m, deps in GRAPH.items()
        if any(d == target or d.startswith(target + ".") for d, _ in deps)
    }


def test_the_graph_sees_the_package() -> None:
    assert {"meshops.cli", "meshops.identity", "meshops.engine.flowrun"} <= set(GRAPH)
    assert ("meshops.context", "") in GRAPH["meshops.identity"] or any(
        d == "meshops.context" for d, _ in GRAPH["meshops.identity"]
    )


def test_nothing_imports_the_cli() -> None:
    assert _importers("meshops.cli") - {"meshops.cli", "meshops.__main__"} == set()


def test_only_the_cli_uses_the_global_consoles() -> None:
    users = {
        m
        for m, deps in GRAPH.items()
        if any(d == "meshops.console" and n in ("err", "out") for d, n in deps)
    }
    assert users <= {"meshops.cli"}


def test_identity_builds_on_facts_only() -> None:
    deps = {d for d, _ in GRAPH["meshops.identity"]}
    assert deps <= {"meshops.context", "meshops.errors", "meshops.naming"}
    # naming only for type hints and the lazy names_for: it is computed from an Identity
    source = (SRC / "identity.py").read_text(encoding="utf-8")
    assert "if TYPE_CHECKING:\n    from meshops.naming import Names" in source


def test_the_engine_never_reaches_for_deploy_janitor_or_targets() -> None:
    engine = {m for m in GRAPH if m.startswith("meshops.engine")}
    for module in engine:
        deps = {d for d, _ in GRAPH[module]}
        reached = {d for d in deps if d.split(".")[1] in ("deploy", "janitor", "targets", "cli")}
        assert reached == set(), module


def test_facts_and_files_do_not_reach_up() -> None:
    low = ("meshops.context", "meshops.errors", "meshops.yamldoc", "meshops.config")
    high = ("plan", "deploy", "janitor", "targets", "engine", "cli", "wheels")
    for module in low:
        deps = {d for d, _ in GRAPH[module]}
        assert {d for d in deps if d.split(".")[1] in high} == set(), module


def test_local_commands_do_not_load_the_sdk() -> None:
    """The SDK takes over a second to import (every service's dataclasses): the CLI and a
    local run load it only when a command makes payloads or calls a workspace."""
    code = (
        "import sys, meshops.cli, meshops.engine.flowrun, meshops.testing.plugin;"
        "print(sorted(m for m in sys.modules if m.startswith('databricks.sdk')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
