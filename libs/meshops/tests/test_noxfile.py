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


# ---- lint: new files git does not track yet ----------------------------------------------------


@pytest.fixture
def new_team(tmp_path: Path) -> Path:
    """A repository where a team added files it has not `git add`ed yet."""
    from meshops.testing.mesh import git, init_repo

    root = tmp_path / "repo"
    (root / "orgs" / "acme").mkdir(parents=True)
    (root / "orgs" / "acme" / "tracked.py").write_text("x = 1\n")
    (root / ".gitignore").write_text(".meshops/\n__pycache__/\n")
    init_repo(root)
    flow = root / "orgs" / "people" / "domains" / "hr" / "projects" / "staff" / "flows" / "prep"
    for rel in (
        flow / "headcount" / "deployment.yml",
        flow / "headcount" / "count.py",
        root / "libs" / "peoplelib" / "src" / "peoplelib" / "__init__.py",
        root / "tools" / "newtool.py",
        # ignored or outside the linted folders: not listed
        flow / "headcount" / "__pycache__" / "count.cpython-311.pyc",
        root / "orgs" / ".meshops" / "state.db",
        root / "scratch.py",
        root / "course" / "notes.py",
    ):
        rel.parent.mkdir(parents=True, exist_ok=True)
        rel.write_text("x = 1\n")
    (root / "libs" / "staged.py").write_text("y = 2\n")
    git(root, "add", "libs/staged.py")  # staged is tracked: --all-files sees it
    return root


FLOW = "orgs/people/domains/hr/projects/staff/flows/prep/headcount"
UNTRACKED = [
    "libs/peoplelib/src/peoplelib/__init__.py",
    f"{FLOW}/count.py",
    f"{FLOW}/deployment.yml",
    "tools/newtool.py",
]


def test_untracked_files_are_the_new_unignored_files_of_the_team_folders(
    noxfile: ModuleType, new_team: Path
) -> None:
    assert noxfile.untracked_files(new_team) == UNTRACKED


class LintSession:
    """What the lint session uses of a nox session: arguments, warnings."""

    def __init__(self, posargs: list[str]) -> None:
        self.posargs = posargs
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _lint(
    noxfile: ModuleType, root: Path, monkeypatch: pytest.MonkeyPatch, posargs: list[str]
) -> tuple[LintSession, list[tuple[tuple[str, ...], dict[str, str]]]]:
    calls: list[tuple[tuple[str, ...], dict[str, str]]] = []
    venv = root / ".nox" / "workspace"
    monkeypatch.setattr(noxfile, "ROOT", root)
    monkeypatch.setattr(noxfile, "install_workspace", lambda session: venv)
    monkeypatch.setattr(
        noxfile,
        "venv_run",
        lambda session, venv, *args, env=None, **_: calls.append((args, dict(env or {}))),
    )
    session = LintSession(posargs)
    noxfile.lint(session)
    return session, calls


def test_lint_says_in_one_line_that_it_lints_untracked_files_too(
    noxfile: ModuleType, new_team: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, calls = _lint(noxfile, new_team, monkeypatch, [])
    assert session.warnings == [
        "4 file(s) under orgs/, libs/, tools/ that git does not track yet (pre-commit "
        f"--all-files skips them) are linted too: {', '.join(UNTRACKED)}; `git add` them to "
        "commit"
    ]
    hooks = ("pre-commit", "run", "--show-diff-on-failure")
    assert [args for args, _ in calls] == [
        (*hooks, "--all-files"),
        (*hooks, "--files", *UNTRACKED),  # every hook: ruff, yaml, secrets, meshops validate
    ]
    python = new_team / ".nox" / "workspace" / noxfile.BIN / "python"
    assert all(env == {"MESHOPS_PYTHON": str(python)} for _, env in calls)


def test_lint_of_a_clean_tree_runs_the_hooks_once(
    noxfile: ModuleType, new_team: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshops.testing.mesh import commit_all

    commit_all(new_team, "the team's files")
    session, calls = _lint(noxfile, new_team, monkeypatch, ["ruff-check"])
    assert session.warnings == []
    assert [args[-2:] for args, _ in calls] == [("ruff-check", "--all-files")]


def test_lint_with_files_chosen_by_hand_adds_none(
    noxfile: ModuleType, new_team: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, calls = _lint(noxfile, new_team, monkeypatch, ["--files", "tools/newtool.py"])
    assert session.warnings == []
    assert len(calls) == 1


def test_many_untracked_files_still_make_one_line(noxfile: ModuleType) -> None:
    note = noxfile.untracked_note([f"orgs/f{i}.py" for i in range(40)])
    assert "\n" not in note
    assert note.startswith("40 file(s) under orgs/, libs/, tools/")
    assert "orgs/f4.py and 35 more;" in note
