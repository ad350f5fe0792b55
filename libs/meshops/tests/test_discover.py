import json
import os
from pathlib import Path

import pytest

from meshops import discover
from meshops.errors import InvalidInput
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow, write_lib

pytestmark = pytest.mark.unit

TAXI = "orgs/acme/domains/transport/projects/taxinyc"
FIN = "orgs/acme/domains/finance/projects/reporting"


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    """Two domains; taxinyc's lib uses the shared lib `dfcompare`, reporting's does not."""
    write_lib(mesh_repo, "libs/dfcompare", "dfcompare")
    write_lib(mesh_repo, "libs/unused", "unused")
    write_lib(mesh_repo, f"{TAXI}/libs/taxinyc", "taxinyc", ["dfcompare", "pandas>=2"])
    write_lib(mesh_repo, f"{FIN}/libs/reporting", "reporting")
    write_flow(mesh_repo, FlowDef(name="revenue", imports=("taxinyc", "pyspark")))
    write_flow(mesh_repo, FlowDef(name="ingest"))
    write_flow(mesh_repo, FlowDef(kind="ml", name="taximodel", imports=("dfcompare",)))
    write_flow(
        mesh_repo,
        FlowDef(domain="finance", project="reporting", name="share", imports=("reporting",)),
    )
    commit_all(mesh_repo, "mesh")
    return mesh_repo


def rels(flows: list[discover.Flow]) -> list[str]:
    return sorted(f.rel.split("/flows/")[1] for f in flows)


def test_scan_finds_flows_and_the_libs_they_use(repo: Path) -> None:
    mesh = discover.scan(repo)
    assert mesh.problems == ()
    assert rels(list(mesh.flows)) == ["ml/taximodel", "prep/ingest", "prep/revenue", "prep/share"]
    revenue = mesh.find(f"{TAXI}/flows/prep/revenue")
    assert (revenue.org, revenue.domain, revenue.project, revenue.kind, revenue.name) == (
        "acme",
        "transport",
        "taxinyc",
        "prep",
        "revenue",
    )
    # attached to the job: what its notebooks import, dependencies first
    assert [lib.name for lib in revenue.libs] == ["dfcompare", "taxinyc"]
    assert revenue.libs[1].wheel == "taxinyc-0.1.0-py3-none-any.whl"
    assert revenue.libs[1].packages == ("taxinyc",)
    ingest = mesh.find(f"{TAXI}/flows/prep/ingest")
    assert ingest.libs == ()
    assert [lib.name for lib in ingest.project_libs] == ["dfcompare", "taxinyc"]
    model = mesh.find(f"{TAXI}/flows/ml/taximodel")
    assert [lib.name for lib in model.libs] == ["dfcompare"]
    share = mesh.find(repo / FIN / "flows/prep/share/share.py")
    assert [lib.name for lib in share.libs] == ["reporting"]
    assert sorted(lib.name for lib in mesh.libs) == ["dfcompare", "reporting", "taxinyc", "unused"]


def test_layout_breaks_are_reported(repo: Path) -> None:
    (repo / f"{TAXI}/flows/prep/no_spec").mkdir()
    (repo / f"{TAXI}/flows/staging/x").mkdir(parents=True)
    (repo / f"{TAXI}/flows/staging/x/deployment.yml").write_text("tasks: []\n")
    (repo / f"{TAXI}/deployment.yml").write_text("tasks: []\n")
    write_flow(repo, FlowDef(name="BadName"))
    (repo / "orgs/acme/domains/nobody").mkdir()
    messages = sorted(str(p) for p in discover.scan(repo).problems)
    layout = "orgs/<org>/domains/<domain>/projects/<project>/flows/<prep|ml>/<flow>/"
    assert messages == sorted(
        [
            f"{TAXI}/deployment.yml: deployment.yml outside a flow folder; expected {layout}",
            f"{TAXI}/flows/prep/BadName/deployment.yml: flow folder 'BadName' is not a valid "
            "name; expected [a-z][a-z0-9_]*",
            f"{TAXI}/flows/prep/no_spec: flow folder without deployment.yml; add one",
            f"{TAXI}/flows/staging/x/deployment.yml: flow kind 'staging'; expected one of: "
            f"prep, ml ({layout})",
            f"{TAXI}/flows/staging: expected only prep/ and ml/ under flows/",
            "orgs/acme/domains/nobody: domain without domain.yml (owners group)",
        ]
    )


def test_a_badly_named_flow_folder_gets_one_message(repo: Path) -> None:
    write_flow(repo, FlowDef(name="my flow"))
    messages = [str(p) for p in discover.scan(repo).problems]
    assert messages == [
        f"{TAXI}/flows/prep/my flow/deployment.yml: flow folder 'my flow' is not a valid name; "
        "expected [a-z][a-z0-9_]*"
    ]


def test_broken_deployment_symlinks_are_named(repo: Path) -> None:
    folder = repo / f"{TAXI}/flows/prep/ingest"
    (folder / "deployment.yml").unlink()
    (folder / "deployment.yml").symlink_to("deployment.yml")  # a loop
    assert [str(p) for p in discover.scan(repo).problems] == [
        f"{TAXI}/flows/prep/ingest/deployment.yml: is a broken symlink (or a symlink loop); "
        "expected a regular file"
    ]


def test_notebooks_that_are_no_regular_files_in_the_repo_are_not_read(
    repo: Path, tmp_path: Path
) -> None:
    """A FIFO would block the import scan forever; a symlink out of the repo is not read."""
    folder = repo / f"{TAXI}/flows/prep/ingest"
    os.mkfifo(folder / "blocked.py")
    outside = tmp_path / "outside.py"
    outside.write_text("import dfcompare\n")
    (folder / "linked.py").symlink_to(outside)
    ingest = discover.scan(repo).find(f"{TAXI}/flows/prep/ingest")
    assert ingest.libs == ()


def test_find_refuses_a_folder_that_is_no_flow(repo: Path) -> None:
    with pytest.raises(InvalidInput, match="no flow there"):
        discover.scan(repo).find(f"{TAXI}/libs")


def change(repo: Path, rel: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(path.read_text() + "\n# changed\n" if path.exists() else "x = 1\n")
    commit_all(repo, f"change {rel}")


def test_affected_follows_flows_project_libs_and_shared_libs(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feat")
    mesh = discover.scan(repo)
    assert discover.affected(mesh, "main") == []

    change(repo, f"{TAXI}/flows/prep/revenue/extract.py")
    assert rels(discover.affected(mesh, "main")) == ["prep/revenue"]

    change(repo, f"{FIN}/libs/reporting/src/reporting/__init__.py")
    assert rels(discover.affected(mesh, "main")) == ["prep/revenue", "prep/share"]

    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "shared")
    change(repo, "libs/dfcompare/src/dfcompare/__init__.py")
    assert rels(discover.affected(mesh, "main")) == ["ml/taximodel", "prep/ingest", "prep/revenue"]

    git(repo, "checkout", "-q", "-b", "unused-lib", "main")
    change(repo, "libs/unused/src/unused/__init__.py")
    change(repo, "README.md")
    assert discover.affected(mesh, "main") == []


def test_domain_and_platform_changes(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "owners")
    change(repo, "orgs/acme/domains/finance/domain.yml")
    mesh = discover.scan(repo)
    assert rels(discover.affected(mesh, "main")) == ["prep/share"]
    change(repo, ".brickopscfg/clusters.yml")
    assert len(discover.affected(mesh, "main")) == 4


def test_affected_since_a_merge_base_ignores_main_moving_on(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feat")
    change(repo, f"{TAXI}/flows/prep/ingest/load.py")
    git(repo, "checkout", "-q", "main")
    change(repo, f"{FIN}/flows/prep/share/load.py")
    git(repo, "checkout", "-q", "feat")
    assert rels(discover.affected(discover.scan(repo), "main")) == ["prep/ingest"]


def test_unknown_ref_is_invalid_input(repo: Path) -> None:
    with pytest.raises(InvalidInput, match="'nope' is not a git ref here"):
        discover.affected(discover.scan(repo), "nope")


def test_libs_imported_by_ipynb_notebooks_are_found(repo: Path) -> None:
    folder = repo / TAXI / "flows/prep/ingest"
    (folder / "extract.py").unlink()
    cell = {"cell_type": "code", "metadata": {}, "source": ["import taxinyc\n", "x = 1\n"]}
    (folder / "extract.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}}))
    # checkpoints Jupyter leaves behind and notebooks that are not JSON do not count
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "old.ipynb").write_text(
        json.dumps({"cells": [{"cell_type": "code", "source": "import reporting"}]})
    )
    (folder / "broken.ipynb").write_text("not json")
    mesh = discover.scan(repo)
    ingest = mesh.find(f"{TAXI}/flows/prep/ingest")
    assert [lib.name for lib in ingest.libs] == ["dfcompare", "taxinyc"]
