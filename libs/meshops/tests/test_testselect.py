"""`nox -s tests -- --changed`: which test folders a change needs, and how many workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshops import discover, testselect
from meshops.errors import InvalidInput
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow, write_lib

pytestmark = pytest.mark.unit

TAXI = "orgs/acme/domains/transport/projects/taxinyc"
FIN = "orgs/acme/domains/finance/projects/reporting"
REVENUE = f"{TAXI}/flows/prep/revenue/tests"
INGEST = f"{TAXI}/flows/prep/ingest/tests"
MODEL = f"{TAXI}/flows/ml/taximodel/tests"
SHARE = f"{FIN}/flows/prep/share/tests"


def _tests(root: Path, folder: str, text: str = "def test_it():\n    pass\n") -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "test_it.py").write_text(text, encoding="utf-8")


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    """taxinyc's lib requires the shared `dfcompare`; the ML flow imports dfcompare directly;
    finance's flow uses its own lib; the ingest flow's tests load tools/taxigen.py."""
    write_lib(mesh_repo, "libs/dfcompare", "dfcompare")
    write_lib(mesh_repo, "libs/unused", "unused")
    write_lib(mesh_repo, f"{TAXI}/libs/taxinyc", "taxinyc", ["dfcompare"])
    write_lib(mesh_repo, f"{FIN}/libs/reporting", "reporting")
    write_flow(mesh_repo, FlowDef(name="revenue", imports=("taxinyc",)))
    write_flow(mesh_repo, FlowDef(name="ingest"))
    write_flow(mesh_repo, FlowDef(kind="ml", name="taximodel", imports=("dfcompare",)))
    write_flow(
        mesh_repo,
        FlowDef(domain="finance", project="reporting", name="share", imports=("reporting",)),
    )
    for folder in ("libs/dfcompare", f"{TAXI}/libs/taxinyc", f"{FIN}/libs/reporting"):
        _tests(mesh_repo, f"{folder}/tests")
    for folder in (REVENUE, MODEL, SHARE):
        _tests(mesh_repo, folder)
    _tests(mesh_repo, INGEST, 'TAXIGEN = "tools/taxigen.py"\n')
    (mesh_repo / "tools").mkdir()
    (mesh_repo / "tools" / "taxigen.py").write_text("print('trips')\n", encoding="utf-8")
    (mesh_repo / "tools" / "synthmesh.py").write_text("print('mesh')\n", encoding="utf-8")
    _tests(mesh_repo, "tools/tests")
    commit_all(mesh_repo, "mesh")
    return mesh_repo


def paths(repo: Path, *files: str) -> list[str]:
    selection = testselect.select(discover.scan(repo), files)
    assert selection.everything is None
    return list(selection.paths)


def test_a_flow_change_runs_the_flow_tests(repo: Path) -> None:
    assert paths(repo, f"{TAXI}/flows/prep/revenue/load.py") == [REVENUE]
    assert paths(repo, f"{REVENUE}/test_it.py") == [REVENUE]


def test_a_lib_change_runs_its_tests_its_dependents_and_the_flows_using_them(repo: Path) -> None:
    # dfcompare: taxinyc requires it, so it is a lib of every taxinyc flow (and taximodel
    # imports it too); finance's flow uses neither
    assert paths(repo, "libs/dfcompare/src/dfcompare/__init__.py") == [
        "libs/dfcompare/tests",
        MODEL,
        INGEST,
        REVENUE,
        f"{TAXI}/libs/taxinyc/tests",
    ]
    # a project lib: the project's flows (a project lib affects each of them), not finance
    assert paths(repo, f"{TAXI}/libs/taxinyc/pyproject.toml") == [
        MODEL,
        INGEST,
        REVENUE,
        f"{TAXI}/libs/taxinyc/tests",
    ]
    assert paths(repo, f"{FIN}/libs/reporting/src/reporting/__init__.py") == [
        SHARE,
        f"{FIN}/libs/reporting/tests",
    ]
    assert paths(repo, "libs/unused/src/unused/__init__.py") == []  # a lib without tests


def test_a_domain_file_runs_the_domain_flows(repo: Path) -> None:
    assert paths(repo, "orgs/acme/domains/finance/domain.yml") == [SHARE]


def test_a_tool_runs_tools_tests_and_the_tests_that_load_it(repo: Path) -> None:
    assert paths(repo, "tools/taxigen.py") == [INGEST, "tools/tests"]
    assert paths(repo, "tools/synthmesh.py") == ["tools/tests"]
    assert paths(repo, "tools/tests/test_it.py") == ["tools/tests"]


def test_docs_and_other_files_run_nothing(repo: Path) -> None:
    selection = testselect.select(discover.scan(repo), ["README.md", "course/01/intro.md"])
    assert selection.paths == ()
    assert selection.everything is None
    assert "nothing to run" in selection.summary()


@pytest.mark.parametrize(
    "platform",
    [
        "libs/meshops/src/meshops/plan.py",
        "libs/meshops/tests/test_plan.py",
        ".brickopscfg/config.yml",
        "noxfile.py",
        "pyproject.toml",
    ],
)
def test_a_platform_change_runs_everything(repo: Path, platform: str) -> None:
    selection = testselect.select(
        discover.scan(repo), [f"{TAXI}/flows/prep/revenue/x.py", platform]
    )
    assert selection.everything == f"{platform} is platform code"
    assert "every test runs" in selection.summary()


def test_a_deleted_flow_has_no_tests_to_run(repo: Path) -> None:
    assert paths(repo, "orgs/acme/domains/transport/projects/taxinyc/flows/prep/gone/x.py") == []


def test_changed_files_since_the_merge_base_include_uncommitted_and_untracked(
    repo: Path,
) -> None:
    git(repo, "checkout", "-q", "-b", "feat")
    (repo / TAXI / "flows/prep/revenue/load.py").write_text("print(1)\n", encoding="utf-8")
    commit_all(repo, "revenue")
    git(repo, "checkout", "-q", "main")
    (repo / "README.md").write_text("main moved on\n", encoding="utf-8")
    commit_all(repo, "main moves on")
    git(repo, "checkout", "-q", "feat")
    (repo / TAXI / "flows/prep/ingest/load.py").write_text("print(2)\n", encoding="utf-8")
    (repo / FIN / "flows/prep/share/new_task.py").write_text("print(3)\n", encoding="utf-8")
    assert testselect.changed_files(repo, "main") == [
        f"{FIN}/flows/prep/share/new_task.py",
        f"{TAXI}/flows/prep/ingest/load.py",
        f"{TAXI}/flows/prep/revenue/load.py",
    ]
    with pytest.raises(InvalidInput, match="'nope' is not a git ref"):
        testselect.changed_files(repo, "nope")


def test_main_prints_the_selection_as_json(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    git(repo, "checkout", "-q", "-b", "feat")
    (repo / TAXI / "flows/prep/revenue/load.py").write_text("print(1)\n", encoding="utf-8")
    assert testselect.main(["--root", str(repo)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "since": "main",
        "files": [f"{TAXI}/flows/prep/revenue/load.py"],
        "paths": [REVENUE],
        "everything": None,
    }
    assert testselect.main(["--root", str(repo), "--since", "nope"]) == 2
    assert "is not a git ref" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("cpus", "memory_gib", "expected"),
    [
        (1, 4, 1),
        (2, 24, 1),  # two Spark sessions would fight over two cores
        (4, 16, 2),
        (8, 64, 5),
        (8, 4, 2),  # memory decides: 2 GiB per worker
        (64, 512, 8),  # at most 8
        (16, None, 8),  # memory unknown: the cores decide
    ],
)
def test_workers_are_sized_to_the_machine(cpus: int, memory_gib: int | None, expected: int) -> None:
    memory = memory_gib * 1024**3 if memory_gib else None
    assert testselect.choose_workers(cpus, memory) == expected


def test_workers_can_be_set_and_say_why() -> None:
    assert testselect.workers({"MESHOPS_TEST_WORKERS": "3"}) == (3, "MESHOPS_TEST_WORKERS=3")
    count, why = testselect.workers({})
    assert count >= 1
    assert "CPUs" in why
    assert "MESHOPS_TEST_WORKERS overrides" in why
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="MESHOPS_TEST_WORKERS"):
            testselect.workers({"MESHOPS_TEST_WORKERS": bad})
