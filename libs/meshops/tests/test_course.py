"""The course's own pieces: every exercise has a solution that fits in its place, and
`meshops course check` says what is wrong with a hint and exits 1, then 0 once it is right.
`nox -s course` runs the lessons themselves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshops import course, identity
from meshops.cli import app
from meshops.errors import InvalidInput
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def lessons(tmp_path: Path) -> Path:
    """A copy of the course folder, to apply solutions to."""
    shutil.copytree(ROOT / "course", tmp_path / "course")
    return tmp_path


@pytest.mark.parametrize("key", list(course.LESSONS))
def test_every_exercise_has_a_solution_that_takes_its_place(lessons: Path, key: str) -> None:
    wanted = course.exercises(lessons, key)
    assert wanted, f"lesson {key} has no exercise"
    assert course.apply_solutions(lessons, key) == sorted(wanted)
    solved = course.lesson(key).path(lessons).read_text(encoding="utf-8")
    assert "# EXERCISE" not in solved
    assert solved.startswith(course.NOTEBOOK_HEADER)
    assert solved.count("# SOLUTION") == len(wanted)
    assert "# MAGIC %md" in solved and "check(" in solved


def test_a_solution_without_its_exercise_is_refused(lessons: Path) -> None:
    extra = lessons / "course" / "solutions" / "00.py"
    extra.write_text(extra.read_text() + "\n# COMMAND ----------\n\n# SOLUTION 00.9\npass\n")
    with pytest.raises(InvalidInput, match=r"solutions/00\.py: .*no such exercise: \['00\.9'\]"):
        course.apply_solutions(lessons, "00")


def test_an_unknown_lesson_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match="lesson '7': expected one of 00, 01, 02, 03, 04, 05"):
        course.lesson("7")
    assert course.lesson("2").key == "02"


def test_the_report_gives_a_hint_under_each_failed_check() -> None:
    shown = course.report(
        "00", [course.Result("branch", False, "git switch -c course/me"), course.Result("x", True)]
    )
    assert shown.splitlines()[1:] == [
        "  FAIL branch",
        "       hint: git switch -c course/me",
        "  ok   x",
        "1/2 checks passed",
    ]


@pytest.fixture
def repo(mesh_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("GITHUB_ACTIONS", "MESHOPS_BRANCH", "MESHOPS_USER", "MESHOPS_COMMIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MESHOPS_STATE_DIR", str(mesh_repo / ".meshops"))
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"revenue_by_borough": ()}))
    commit_all(mesh_repo, "revenue")
    return mesh_repo


def test_check_00_hints_until_the_branch_and_names_are_right(repo: Path) -> None:
    result = CliRunner().invoke(app, ["--repo", str(repo), "course", "check", "00"])
    assert result.exit_code == 1
    assert "FAIL you work on a course branch (now 'main')" in result.stdout
    assert "hint: exercise 00.1: `git switch -c course/<your name>`" in result.stdout
    assert "hint: you recorded None; add `--env dev` to `meshops names`" in result.stdout
    assert "lesson 00: not there yet" in result.stderr

    git(repo, "switch", "-q", "-c", "course/student")
    ctx = course.Checker(repo).context
    local = identity.of(ctx()).names_for(course.REVENUE)
    dev = identity.of(ctx("dev")).names_for(course.REVENUE)
    answers = course.answers_file(repo)
    answers.parent.mkdir(parents=True, exist_ok=True)
    recorded = {"local_table": local.table("revenue_by_borough"), "dev_job": dev.job}
    answers.write_text(json.dumps({"00": recorded}))
    result = CliRunner().invoke(app, ["--repo", str(repo), "course", "check", "00"])
    assert result.exit_code == 0, result.stdout
    assert "3/3 checks passed" in result.stdout
    assert "_coursestudent_" in dev.job
