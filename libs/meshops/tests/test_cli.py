import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshops import config, context, identity, naming
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
    ident = identity.of(ctx)
    n = naming.names(ident, notebook)
    assert json.loads(out) == {
        "notebook": n.notebook,
        "env": "dev",
        "catalog": "acme_transport_taxinyc",
        "schema": n.schema,
        "table_prefix": n.schema + ".",
        "job": n.job,
        "pipeline": n.pipeline,
    }
    assert n.schema.endswith("_featurex_" + ident.short_commit + "_revenue")


def test_exit_codes(repo: Path) -> None:
    assert run(repo, "names", "nowhere.py")[0] == 2
    assert run(repo, "plan", "--env", "qa")[0] == 2
    assert run(repo, "plan", "--changed-since", "no-such-ref")[0] == 2
    # git cannot diff unrelated histories: a failure, not bad input
    git(repo, "checkout", "-q", "--orphan", "island")
    commit_all(repo, "unrelated")
    code, _, err = run(repo, "plan", "--changed-since", "main")
    assert code == 1
    assert err.startswith("error: git diff")


def test_plan_fails_naming_flows_in_invalid_folders(repo: Path) -> None:
    write_flow(repo, FlowDef(name="my flow", tasks={"a": ()}))
    code, out, err = run(repo, "plan", "--json")
    assert (code, out) == (2, "")
    assert f"{TAXI}/flows/prep/my flow/deployment.yml: flow folder 'my flow' is not a valid" in err
    assert err.count("✗") == 1
    assert run(repo, "validate")[0] == 2
    # a flow chosen by --flow still plans: the broken folder is not part of it
    assert run(repo, "plan", "--json", "--flow", str(repo / REVENUE))[0] == 0


def test_meshops_env_chooses_the_env_and_the_flag_wins(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHOPS_ENV", "prod")
    code, out, _ = run(repo, "plan", "--json", "--flow", str(repo / REVENUE))
    assert code == 0
    assert json.loads(out)[0]["job_name"] == "transport_taxinyc_prod_revenue"
    code, out, _ = run(repo, "plan", "--env", "dev", "--json", "--flow", str(repo / REVENUE))
    assert json.loads(out)[0]["job_name"].startswith("transport_taxinyc_dev_revenue_")
    monkeypatch.setenv("MESHOPS_ENV", "qa")
    code, _, err = run(repo, "plan", "--json")
    assert code == 2
    assert "MESHOPS_ENV='qa' is not known; expected one of: local, dev, staging, prod" in err


def test_names_longer_than_unity_catalog_allows_fail_validate_and_plan(repo: Path) -> None:
    project = "p" * 250  # catalog acme_transport_ppp...: 265 characters
    write_flow(repo, FlowDef(project=project, name="long", tasks={"a": ()}))
    code, _, err = run(repo, "validate")
    assert code == 2
    rel = f"orgs/acme/domains/transport/projects/{project}/flows/prep/long"
    assert f"✗ {rel}: catalog name 'acme_transport_ppp" in err
    assert "is 265 characters in prod with the longest user and branch; expected at most 255" in err
    code, out, err = run(repo, "plan", "--json")
    assert (code, out) == (2, "")
    assert "catalog name 'acme_transport_ppp" in err
    assert "is 265 characters in dev; expected at most 255" in err


def test_names_at_the_limit_pass(repo: Path) -> None:
    project = "p" * (255 - len("acme_transport_"))
    write_flow(repo, FlowDef(project=project, name="x", tasks={"a": ()}))
    code, _, err = run(repo, "validate")
    assert code == 0, err


def test_a_notebook_symlinked_out_of_the_repo_fails_validate_and_plan(
    repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("token = dapi0123456789abcdef0123456789abcdef\n")
    notebook = repo / REVENUE / "revenue_by_borough.py"
    notebook.unlink()
    notebook.symlink_to(secret)
    expected = (
        f"{REVENUE}/deployment.yml:3: tasks[0].task_key: notebook 'revenue_by_borough.py' "
        "resolves outside the repository (a symlink?); expected a file inside it"
    )
    for args in (("validate",), ("plan", "--json"), ("plan", "--env", "prod")):
        code, out, err = run(repo, *args)
        assert (code, out) == (2, ""), args
        assert expected in err, args
        assert "dapi" not in err


def test_spec_and_config_files_out_of_the_repo_are_refused_unread(
    repo: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("tasks: dapi0123456789abcdef0123456789abcdef\nroot:x:0:0:root:/root\n")
    spec = repo / REVENUE / "deployment.yml"
    spec.unlink()
    spec.symlink_to(secret)
    code, out, err = run(repo, "validate")
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == (
        f"✗ {REVENUE}/deployment.yml: file resolves outside the repository (a symlink?); "
        "expected a regular file inside it"
    )
    assert "dapi" not in err and "root:x" not in err
    clusters = repo / ".brickopscfg" / "clusters.yml"
    clusters.unlink()
    clusters.symlink_to(secret)
    config.forget()  # the platform config is read once per process
    code, _, err = run(repo, "validate")
    assert code == 2
    assert ".brickopscfg/clusters.yml: file resolves outside the repository" in err
    assert "dapi" not in err


def test_invalid_values_are_echoed_as_short_redacted_excerpts(repo: Path) -> None:
    spec = repo / REVENUE / "deployment.yml"
    spec.write_text(
        "tasks:\n  - task_key: 'password=hunter2hunter2 " + "x" * 5000 + "'\n", encoding="utf-8"
    )
    code, _, err = run(repo, "validate")
    assert code == 2
    (line,) = [entry for entry in err.splitlines() if entry.startswith("✗")]
    assert "hunter2" not in line
    assert "got 'password=[REDACTED] xxxx" in line
    assert len(line) < 300
