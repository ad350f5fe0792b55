""".pre-commit-config.yaml: no hook relies on PATH, so `git commit` works from any shell.

Hooks that need the workspace (mypy, `meshops validate`) start its interpreter explicitly
through tools/in_workspace.py; every other hook runs a tool pre-commit installs itself. The
config is read here, not run: pre-commit would touch everybody's working tree.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from meshops.testing.mesh import FlowDef, write_flow

pytestmark = pytest.mark.unit

LAUNCHER = "tools/in_workspace.py"


@pytest.fixture(scope="module")
def hooks(meshops_repo_root: Path) -> list[dict[str, Any]]:
    config = yaml.safe_load((meshops_repo_root / ".pre-commit-config.yaml").read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


@pytest.fixture(scope="module")
def launcher(meshops_repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("in_workspace", meshops_repo_root / LAUNCHER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_hook_runs_a_program_found_on_path(
    hooks: list[dict[str, Any]], meshops_repo_root: Path
) -> None:
    for hook in hooks:
        # system, script, docker_image...: pre-commit looks the entry up on the user's PATH
        assert hook["language"] == "python", hook["id"]
        command = shlex.split(hook["entry"])
        if hook.get("additional_dependencies"):
            continue  # a tool pre-commit installs into the hook's own environment
        # nothing installed: the hook environment's Python runs the launcher of the workspace
        assert command[:2] == ["python", LAUNCHER], hook["id"]
        assert (meshops_repo_root / command[1]).is_file()


def test_the_workspace_hooks_are_mypy_meshops_validate_and_codeowners(
    hooks: list[dict[str, Any]],
) -> None:
    launched = {h["id"]: h["entry"] for h in hooks if LAUNCHER in h["entry"]}
    assert launched == {
        "mypy": f"python {LAUNCHER} -m mypy",
        "meshops-validate": f"python {LAUNCHER} -m meshops validate",
        "meshops-codeowners": f"python {LAUNCHER} -m meshops codeowners --check",
    }
    codeowners = next(h for h in hooks if h["id"] == "meshops-codeowners")
    assert codeowners["pass_filenames"] is False  # it checks the whole file, not the ones given
    for path in (
        "orgs/people/domains/hr/domain.yml",
        ".github/CODEOWNERS",
        ".brickopscfg/config.yml",
    ):
        assert _matches(codeowners, path), path
    assert not _matches(codeowners, "orgs/people/domains/hr/projects/staff/flows/prep/x/a.py")


# ---- the launcher ------------------------------------------------------------------------------


def test_the_shared_nox_environment_is_found_without_path(
    launcher: ModuleType, tmp_path: Path
) -> None:
    python = tmp_path / ".nox" / "workspace" / launcher.BIN / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    assert launcher.workspace_python(tmp_path, {}) == python
    assert launcher.workspace_python(tmp_path, {"PATH": ""}) == python


def test_meshops_python_wins(launcher: ModuleType, tmp_path: Path) -> None:
    assert launcher.workspace_python(tmp_path, {"MESHOPS_PYTHON": sys.executable}) == Path(
        sys.executable
    )
    with pytest.raises(launcher.NoWorkspace, match=r"MESHOPS_PYTHON=/nope: no such interpreter"):
        launcher.workspace_python(tmp_path, {"MESHOPS_PYTHON": "/nope"})


def test_no_environment_says_how_to_make_one(launcher: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(launcher.NoWorkspace) as missing:
        launcher.workspace_python(tmp_path, {})
    assert str(missing.value) == (
        f"no workspace environment at {tmp_path / '.nox' / 'workspace'}: run `nox -s lint` once "
        "(it installs the workspace there and runs every hook), or set MESHOPS_PYTHON to an "
        "interpreter that has the workspace installed"
    )


def test_the_child_gets_the_workspace_environment(launcher: ModuleType, tmp_path: Path) -> None:
    venv = tmp_path / "workspace"
    (venv / launcher.BIN).mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    hook_env = {"PATH": "/hook/bin", "VIRTUAL_ENV": "/hook", "PYTHONHOME": "/x"}
    env = launcher.child_environment(venv / launcher.BIN / "python", hook_env)
    assert env["VIRTUAL_ENV"] == str(venv)
    assert env["PATH"] == os.pathsep.join([str(venv / launcher.BIN), "/hook/bin"])
    assert "PYTHONHOME" not in env


def _hook_run(
    root: Path, cwd: Path, args: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the launcher as pre-commit runs a hook entry: PATH holds no Python at all."""
    return subprocess.run(
        [sys.executable, str(root / LAUNCHER), *args],
        cwd=cwd,
        env={"PATH": "/nonexistent", "HOME": os.environ.get("HOME", "/"), **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.integration
def test_the_launcher_runs_the_shared_environment_with_an_empty_path(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "tools").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[3] / LAUNCHER, root / LAUNCHER)
    # the test's own environment stands in for the one nox installs
    (root / ".nox").mkdir()
    (root / ".nox" / "workspace").symlink_to(sys.prefix, target_is_directory=True)
    python = root / ".nox" / "workspace" / ("Scripts" if os.name == "nt" else "bin") / "python"

    ran = _hook_run(root, root, ["-c", "import sys, meshops; print(sys.executable)"])
    assert (ran.returncode, ran.stdout.strip()) == (0, str(python))

    (root / ".nox" / "workspace").unlink()
    missing = _hook_run(root, root, ["-m", "mypy"])
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no workspace environment at ")
    assert missing.stderr.count("\n") == 1


@pytest.mark.integration
def test_meshops_validate_hook_checks_a_deployment_yml_git_does_not_track(
    mesh_repo: Path, meshops_repo_root: Path
) -> None:
    """`nox -s lint` hands untracked files to the hooks: the validate hook reads them from disk."""
    flow = FlowDef(domain="people", project="staff", name="headcount", tasks={"count": ()})
    folder = write_flow(mesh_repo, flow)  # not committed, not added
    spec = f"{flow.rel}/deployment.yml"
    entry = ["-m", "meshops", "validate", spec]

    valid = _hook_run(meshops_repo_root, mesh_repo, entry, MESHOPS_PYTHON=sys.executable)
    assert valid.returncode == 0, valid.stderr

    (folder / "deployment.yml").write_text("tasks:\n  - task_key: count\n    max_retries: often\n")
    invalid = _hook_run(meshops_repo_root, mesh_repo, entry, MESHOPS_PYTHON=sys.executable)
    assert invalid.returncode == 2
    assert spec in invalid.stderr and "max_retries" in invalid.stderr


def _matches(hook: dict[str, Any], path: str) -> bool:
    """Whether pre-commit hands `path` to `hook` (files, exclude, types, types_or)."""
    from identify.identify import tags_from_filename

    tags = tags_from_filename(path) | {"file", "text"}
    return (
        re.search(hook.get("files", ""), path) is not None
        and not ("exclude" in hook and re.search(hook["exclude"], path))
        and set(hook.get("types", [])) <= tags
        and (not hook.get("types_or") or bool(set(hook["types_or"]) & tags))
    )


def test_a_new_teams_files_reach_ruff_and_meshops_validate(hooks: list[dict[str, Any]]) -> None:
    flow = "orgs/people/domains/hr/projects/staff/flows/prep/headcount"
    by_file = {
        path: {h["id"] for h in hooks if _matches(h, path)}
        for path in (f"{flow}/count.py", f"{flow}/deployment.yml")
    }
    assert {"ruff-check", "ruff-format", "detect-secrets"} <= by_file[f"{flow}/count.py"]
    assert {"meshops-validate", "check-yaml"} <= by_file[f"{flow}/deployment.yml"]
