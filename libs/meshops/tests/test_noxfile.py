"""noxfile.py: one shared environment for every session, installed only when it changed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

nox = pytest.importorskip("nox")

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def noxfile(meshops_repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("noxfile", meshops_repo_root / "noxfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_session_shares_the_one_environment(noxfile: ModuleType) -> None:
    sessions = nox.registry.get()
    assert {"lint", "tests", "demo", "plan", "run", "wheels", "deploy-dev", "cleanup"} <= set(
        sessions
    )
    # nox makes no environment of its own for any of them: they all run in .nox/workspace
    assert {name: f.venv_backend for name, f in sessions.items()} == {
        name: "none" for name in sessions
    }


def test_the_install_is_every_member_editable_plus_the_dev_group(noxfile: ModuleType) -> None:
    args = noxfile.install_args()
    assert "libs/meshops[runtime]" in args
    assert args[args.index("libs/meshops[runtime]") - 1] == "-e"
    assert "libs/dfcompare" in args
    assert any(a.startswith("pytest-xdist") for a in args)
    assert any(a.startswith("pre-commit") for a in args)


class FakeSession:
    """What install_workspace uses of a nox session; records the commands."""

    def __init__(self, envdir: Path) -> None:
        self.cache_dir = envdir / ".cache"
        self.commands: list[tuple[str, ...]] = []
        self.logs: list[str] = []

    def log(self, message: str) -> None:
        self.logs.append(message)

    def run_install(self, *args: str, **_: Any) -> None:
        self.commands.append(args)
        if args[1:3] == ("venv", "--clear"):  # uv venv: make the interpreter appear
            python = Path(args[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True)
            python.touch()


def test_install_runs_once_then_only_when_the_stamp_changes(
    noxfile: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(noxfile, "_uv", lambda: "uv")
    session = FakeSession(tmp_path)
    venv = noxfile.install_workspace(session)
    assert venv == tmp_path / "workspace"
    assert [c[:3] for c in session.commands] == [
        ("uv", "venv", "--clear"),
        ("uv", "pip", "install"),
    ]
    assert (venv / noxfile.STAMP).is_file()

    session.commands.clear()
    assert noxfile.install_workspace(session) == venv
    assert session.commands == []
    assert "up to date, nothing to install" in session.logs[-1]

    # another requirement (or member pyproject.toml): install again, in the same environment
    monkeypatch.setattr(noxfile, "install_args", lambda: ["-e", "libs/dfcompare", "rich"])
    noxfile.install_workspace(session)
    assert [c[:3] for c in session.commands] == [("uv", "pip", "install")]
    assert session.commands[0][-3:] == ("-e", "libs/dfcompare", "rich")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-m", "unit"], (["-m", "unit"], False, None)),
        (["--changed", "-x"], (["-x"], True, None)),
        (["--changed-since", "v1.2.0", "-k", "x"], (["-k", "x"], True, "v1.2.0")),
        (["--changed-since=origin/dev"], ([], True, "origin/dev")),
        (["orgs/acme"], (["orgs/acme"], False, None)),
    ],
)
def test_changed_options_are_split_off_pytest_arguments(
    noxfile: ModuleType, args: list[str], expected: tuple[list[str], bool, str | None]
) -> None:
    assert noxfile._changed_option(args) == expected


def test_a_worker_count_given_to_pytest_wins(noxfile: ModuleType) -> None:
    assert noxfile._sets_workers(["-n", "4"])
    assert noxfile._sets_workers(["-n4"])
    assert noxfile._sets_workers(["--numprocesses=auto"])
    assert not noxfile._sets_workers(["-m", "unit", "--no-header"])
