"""Build meshes in temporary folders: for tests, and for the scale check in tools/.

A generated mesh is a real repository: the platform config of a source repo,
flows with deployment.yml and notebooks, libs, domain.yml files and (optionally)
git history, so every meshops command runs on it unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

NOTEBOOK = """# Databricks notebook source
# MAGIC %md
# MAGIC # {task}

# COMMAND ----------
{imports}
print("{task}")
"""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Jane Doe",
    "GIT_AUTHOR_EMAIL": "jane.doe@acme.example",
    "GIT_COMMITTER_NAME": "Jane Doe",
    "GIT_COMMITTER_EMAIL": "jane.doe@acme.example",
}


@dataclass(frozen=True)
class FlowDef:
    """A flow to write: where, and its tasks as `task_key -> upstream keys`."""

    org: str = "acme"
    domain: str = "transport"
    project: str = "taxinyc"
    kind: str = "prep"
    name: str = "revenue"
    tasks: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"extract": (), "load": ("extract",)}
    )
    imports: tuple[str, ...] = ()
    """Packages the notebooks import (decides which libs a job gets as wheels)."""

    @property
    def rel(self) -> str:
        return (
            f"orgs/{self.org}/domains/{self.domain}/projects/{self.project}"
            f"/flows/{self.kind}/{self.name}"
        )


def platform_files(source_root: Path, target: Path) -> None:
    """Copy the platform config and the root pyproject.toml (hatch workspace) of a repo."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source_root / ".brickopscfg", target / ".brickopscfg", dirs_exist_ok=True)
    shutil.copy2(source_root / "pyproject.toml", target / "pyproject.toml")
    (target / ".gitignore").write_text(".meshops/\n", encoding="utf-8")


def write_flow(root: Path, flow: FlowDef) -> Path:
    """Write a flow folder, its notebooks and its domain.yml (if missing)."""
    folder = root / flow.rel
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["description: generated flow", "tasks:"]
    for key, upstream in flow.tasks.items():
        lines.append(f"  - task_key: {key}")
        if upstream:
            lines.append("    depends_on:")
            lines.extend(f"      - task_key: {u}" for u in upstream)
        imports = "".join(f"import {name}\n" for name in flow.imports)
        (folder / f"{key}.py").write_text(
            NOTEBOOK.format(task=key, imports=imports), encoding="utf-8"
        )
    (folder / "deployment.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    domain = root / "orgs" / flow.org / "domains" / flow.domain / "domain.yml"
    if not domain.exists():
        domain.write_text(
            f"owners_group: {flow.domain}-owners\ncontacts: [{flow.domain}@acme.example]\n",
            encoding="utf-8",
        )
    return folder


def write_lib(root: Path, rel: str, name: str, requires: Iterable[str] = ()) -> Path:
    """A hatchling lib (src layout) at `rel`, requiring other libs by name."""
    folder = root / rel
    package = name.replace("-", "_")
    (folder / "src" / package).mkdir(parents=True, exist_ok=True)
    (folder / "src" / package / "__init__.py").write_text(f'"""{name}."""\n', encoding="utf-8")
    deps = ", ".join(f'"{r}"' for r in requires)
    (folder / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["hatchling"]\n'
        'build-backend = "hatchling.build"\n\n'
        "[project]\n"
        f'name = "{name}"\n'
        'version = "0.1.0"\n'
        'requires-python = ">=3.11"\n'
        f"dependencies = [{deps}]\n",
        encoding="utf-8",
    )
    return folder


def synthetic(
    root: Path, source_root: Path, flows: int, *, tasks_per_flow: int = 4
) -> list[FlowDef]:
    """A mesh of `flows` flows spread over domains and projects, each project with a lib."""
    platform_files(source_root, root)
    write_lib(root, "libs/common", "common")
    defs = []
    for i in range(flows):
        domain, project = f"domain{i % 10:02d}", f"project{i % 50:02d}"
        keys = [f"task{t}" for t in range(tasks_per_flow)]
        tasks = {k: ((keys[j - 1],) if j else ()) for j, k in enumerate(keys)}
        flow = FlowDef(
            domain=domain,
            project=project,
            name=f"flow{i:04d}",
            tasks=tasks,
            imports=(f"{project}lib",),
        )
        write_flow(root, flow)
        lib_rel = f"orgs/acme/domains/{domain}/projects/{project}/libs/{project}lib"
        if not (root / lib_rel).exists():
            write_lib(root, lib_rel, f"{project}lib", ["common"])
        defs.append(flow)
    return defs


def git(root: Path, *args: str) -> str:
    """Run git in a test repository with a fixed identity."""
    import os

    proc = subprocess.run(
        ["git", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return proc.stdout.strip()


def init_repo(root: Path, branch: str = "main") -> str:
    """`git init` + first commit of everything; returns the commit."""
    git(root, "init", "-q", "-b", branch)
    git(root, "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
    git(root, "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
    return commit_all(root, "initial mesh")


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")
