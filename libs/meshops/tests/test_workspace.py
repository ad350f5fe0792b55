"""The hatch workspace as nox reads it, and the stamp that lets sessions skip the install."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops import workspace
from meshops.testing.mesh import platform_files, write_lib

pytestmark = pytest.mark.unit


@pytest.fixture
def root(tmp_path: Path, meshops_repo_root: Path) -> Path:
    platform_files(meshops_repo_root, tmp_path)
    write_lib(tmp_path, "libs/dfcompare", "dfcompare")
    write_lib(tmp_path, "orgs/acme/domains/transport/projects/taxinyc/libs/taxinyc", "taxinyc")
    return tmp_path


def test_members_are_the_folders_of_the_workspace_globs(root: Path) -> None:
    assert [p.relative_to(root).as_posix() for p in workspace.member_dirs(root)] == [
        "libs/dfcompare",
        "orgs/acme/domains/transport/projects/taxinyc/libs/taxinyc",
    ]
    assert workspace.dependency_groups(root) == ["dev"]
    assert any(r.startswith("pytest-xdist") for r in workspace.group_requirements(root, "dev"))


def test_the_install_stamp_changes_only_with_what_an_install_puts_in_place(root: Path) -> None:
    args = ["-e", "libs/dfcompare", "pytest>=8"]
    stamp = workspace.install_stamp(root, args, "3.11", "uv")
    assert workspace.install_stamp(root, list(args), "3.11", "uv") == stamp
    # code of an editable member: read from the tree, nothing to install
    (root / "libs/dfcompare/src/dfcompare/new.py").write_text("X = 1\n", encoding="utf-8")
    assert workspace.install_stamp(root, args, "3.11", "uv") == stamp
    # another requirement, interpreter or installer
    assert workspace.install_stamp(root, [*args, "rich"], "3.11", "uv") != stamp
    assert workspace.install_stamp(root, args, "3.12", "uv") != stamp
    assert workspace.install_stamp(root, args, "3.11", "pip") != stamp
    # a member's dependencies (or entry points, extras...)
    pyproject = root / "libs/dfcompare/pyproject.toml"
    pyproject.write_text(pyproject.read_text() + '\n[project.scripts]\nx = "y:z"\n')
    changed = workspace.install_stamp(root, args, "3.11", "uv")
    assert changed != stamp
    # a new member
    write_lib(root, "libs/newlib", "newlib")
    assert workspace.install_stamp(root, args, "3.11", "uv") not in (stamp, changed)
