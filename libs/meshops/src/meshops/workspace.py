"""The hatch workspace: the one list of libs, read from the root pyproject.toml.

Standard library only, because noxfile.py loads this file before anything is installed.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

ROOT_PYPROJECT = "pyproject.toml"


def member_globs(repo_root: Path) -> list[str]:
    """The `workspace.members` patterns of the default hatch environment."""
    data = tomllib.loads((repo_root / ROOT_PYPROJECT).read_text(encoding="utf-8"))
    env = data.get("tool", {}).get("hatch", {}).get("envs", {}).get("default", {})
    members = env.get("workspace", {}).get("members", [])
    globs: list[str] = []
    for member in members:
        globs.append(member["path"] if isinstance(member, dict) else str(member))
    return globs


def member_dirs(repo_root: Path) -> list[Path]:
    """Every lib folder the workspace holds (a folder with a pyproject.toml), sorted."""
    found: set[Path] = set()
    for pattern in member_globs(repo_root):
        for path in repo_root.glob(pattern):
            if (path / "pyproject.toml").is_file():
                found.add(path)
    return sorted(found)


def dependency_groups(repo_root: Path) -> list[str]:
    """The dependency groups the default environment installs (dev tools)."""
    data = tomllib.loads((repo_root / ROOT_PYPROJECT).read_text(encoding="utf-8"))
    env = data.get("tool", {}).get("hatch", {}).get("envs", {}).get("default", {})
    return list(env.get("dependency-groups", []))


def group_requirements(repo_root: Path, group: str) -> list[str]:
    """Requirement strings of a PEP 735 dependency group of the root pyproject.toml."""
    data = tomllib.loads((repo_root / ROOT_PYPROJECT).read_text(encoding="utf-8"))
    groups = data.get("dependency-groups", {})
    out: list[str] = []
    for item in groups.get(group, []):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and "include-group" in item:
            out.extend(group_requirements(repo_root, item["include-group"]))
    return out


def install_stamp(repo_root: Path, args: list[str], *extra: str) -> str:
    """A fingerprint of one install: its arguments and every member's pyproject.toml.

    Members are installed editable, so their code is read from the tree; only their
    pyproject.toml files (dependencies, extras, entry points) and the requirement list
    change what an install puts into the environment. `extra` adds the interpreter and
    installer, so a different Python or installer is a different install.
    """
    digest = hashlib.sha256()
    for part in (*args, "\0", *extra, "\0"):
        digest.update(part.encode() + b"\n")
    for member in member_dirs(repo_root):
        digest.update(member.relative_to(repo_root).as_posix().encode() + b"\n")
        digest.update((member / "pyproject.toml").read_bytes() + b"\0")
    return digest.hexdigest()
