import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshops import context, naming
from meshops.cli import app
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow

pytestmark = pytest.mark.unit

TAXI = "orgs/acme/domains/transport/projects/taxinyc"
REVENUE = f"{TAXI}/flows/prep/revenue"


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"revenue_by_borough": ()}))
    write_flow(mesh_repo, FlowDef(name="ingest", tasks={"load": ()}))
    commit_all(mesh_repo, "flows")
    return mesh_repo


def run(repo: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--repo", str(repo), *args])
    return result.exit_code, result.stdout, result.stderr


def test_flows_json(repo: Path) -> None:
    code, out, _ = run(repo, "flows", "--json")
    assert code == 0
    assert [f["path"] for f in json.loads(out)] == [f"{TAXI}/flows/prep/ingest", REVENUE]


def test_flows_reports_layout_problems_without_failing(repo: Path) -> None:
    (repo / f"{TAXI}/flows/prep/empty").mkdir()
    code, _, err = run(repo, "flows")
    assert code == 0
    assert "flow folder without deployment.yml; add one" in err
    assert "1 layout problem(s): run `meshops validate` for details" in err


def test_validate_ok_and_invalid(repo: Path) -> None:
    assert run(repo, "validate")[0] == 0
    spec = repo / REVENUE / "deployment.yml"
    spec.write_text(spec.read_text().replace("task_key: revenue_by_borough", "task_key: nope"))
    code, out, err = run(repo, "validate")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert lines[0].endswith(
        f"{REVENUE}/deployment.yml:3: tasks[0].task_key: notebook 'nope.py' not found in {REVENUE}/"
    )
    assert lines[-1] == ("error: 1 problem(s) in 1 file(s); fix them and run `meshops validate`")
    # validating only the other flow passes
    assert run(repo, "validate", str(repo / TAXI / "flows/prep/ingest/deployment.yml"))[0] == 0


def test_plan_prints_nothing_when_any_flow_is_invalid(repo: Path) -> None:
    spec = repo / f"{TAXI}/flows/prep/ingest/deployment.yml"
    spec.write_text("tasks: {}\n")
    code, out, err = run(repo, "plan", "--env", "prod", "--json")
    assert (code, out) == (2, "")
    assert "ingest/deployment.yml:1: tasks: expected a list, got mapping {}" in err


def test_plan_json_for_selected_and_changed_flows(repo: Path) -> None:
    code, out, _ = run(repo, "plan", "--env", "prod", "--json", "--flow", str(repo / REVENUE))
    assert code == 0
    (plan,) = json.loads(out)
    assert plan["job_name"] == "transport_taxinyc_prod_revenue"
    assert plan["settings"]["tags"]["deployment"] == "prod"
    git(repo, "checkout", "-q", "-b", "feat-x")
    (repo / f"{TAXI}/flows/prep/ingest/load.py").write_text("print('changed')\n")
    commit_all(repo, "change ingest")
    code, out, _ = run(repo, "plan", "--json", "--changed-since", "main")
    assert [p["flow"] for p in json.loads(out)] == [f"{TAXI}/flows/prep/ingest"]
    assert json.loads(out)[0]["settings"]["name"].startswith(
        "transport_taxinyc_dev_ingest_janedoe_featx_"
    )


def test_plan_human_output_notes_prod_preview(repo: Path) -> None:
    code, out, err = run(repo, "plan", "--env", "prod")
    assert code == 0
    assert '"job_name": "transport_taxinyc_prod_revenue"' in out
    assert "2 job(s), env prod" in out
    assert "not a release tag" in err


def test_names_equal_naming(repo: Path) -> None:
    notebook = repo / REVENUE / "revenue_by_borough.py"
    code, out, _ = run(
        repo, "--branch", "feature/x", "names", str(notebook), "--env", "dev", "--json"
    )
    assert code == 0
    ctx = context.detect(repo, env="dev", overrides={"branch": "feature/x"}, environ={})
    n = naming.for_notebook(ctx, notebook)
    assert json.loads(out) == {
        "notebook": n.notebook,
        "env": "dev",
        "catalog": "acme_transport_taxinyc",
        "schema": n.schema,
        "table_prefix": n.schema + ".",
        "job": n.job,
        "pipeline": n.pipeline,
    }
    assert n.schema.endswith("_featurex_" + ctx.short_commit + "_revenue")


def test_exit_codes(repo: Path) -> None:
    assert run(repo, "names", "nowhere.py")[0] == 2
    assert run(repo, "plan", "--env", "staging")[0] == 2
    assert run(repo, "plan", "--changed-since", "no-such-ref")[0] == 2
    # git cannot diff unrelated histories: a failure, not bad input
    git(repo, "checkout", "-q", "--orphan", "island")
    commit_all(repo, "unrelated")
    code, _, err = run(repo, "plan", "--changed-since", "main")
    assert code == 1
    assert err.startswith("error: git diff")
