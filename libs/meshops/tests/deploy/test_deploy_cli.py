"""`meshops deploy` and `meshops jobs` on the local target: which flows, which names, which
refusals (exit 2, one line), and that a second deploy writes nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from meshops import targets
from meshops.errors import InvalidInput
from meshops.state import StatePaths
from meshops.targets.local import JobRegistry
from meshops.testing.integration import pass_staging
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow, write_lib

pytestmark = pytest.mark.unit

TAXI = "orgs/acme/domains/transport/projects/taxinyc"
REVENUE = f"{TAXI}/flows/prep/revenue"
INGEST = f"{TAXI}/flows/prep/ingest"
LIB = f"{TAXI}/libs/taxilib"

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def repo(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"aggregate": ()}, imports=("taxilib",)))
    write_flow(mesh_repo, FlowDef(name="ingest", tasks={"load": ()}, imports=("taxilib",)))
    write_lib(mesh_repo, LIB, "taxilib")
    commit_all(mesh_repo, "two flows and a lib")
    return mesh_repo


def registry() -> JobRegistry:
    return JobRegistry(StatePaths.for_repo(Path.cwd()).jobs_db)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


def feature_branch(repo: Path, name: str = "feat-x") -> str:
    git(repo, "checkout", "-q", "-b", name)
    (repo / REVENUE / "aggregate.py").write_text("# Databricks notebook source\nimport taxilib\n")
    return commit_all(repo, "change revenue")


def test_dev_deploys_flows_affected_since_main_to_the_local_registry(repo: Path, cli: Cli) -> None:
    commit = feature_branch(repo)
    code, out, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--json")

    assert code == 0, err
    name = f"transport_taxinyc_dev_revenue_janedoe_featx_{commit[:8]}"
    assert json.loads(out) == [
        {"flow": REVENUE, "job": name, "action": "created", "job_id": 1, "reason": ""}
    ]
    assert "deploying 1 flow(s) affected since main to local registry" in err
    (job,) = registry().all()
    assert job.name == name
    assert job.deployed_by == "jane.doe@acme.example"
    assert job.settings["git_source"]["git_commit"] == commit
    assert job.settings["tags"]["deployment"] == f"dev_janedoe_featx_{commit[:8]}"
    assert job.permissions == [
        {"group_name": "transport-owners", "permission_level": "CAN_MANAGE"},
        {"group_name": "acme-data-readers", "permission_level": "CAN_VIEW"},
    ]
    folder = f"acme_platform/artifacts/wheels/dev_janedoe_featx_{commit[:8]}"
    wheel = StatePaths.for_repo(repo).volumes / folder / "taxilib-0.1.0-py3-none-any.whl"
    assert wheel.is_file()
    whl_paths = [lib["whl"] for lib in job.settings["tasks"][0]["libraries"] if "whl" in lib]
    assert whl_paths == [
        f"/Volumes/acme_platform/artifacts/wheels/dev_janedoe_featx_{commit[:8]}/{wheel.name}"
    ]

    code, out, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--json")
    assert code == 0
    assert [r["action"] for r in json.loads(out)] == ["unchanged"]
    assert "1 unchanged; 0 wheel(s) uploaded" in err
    assert registry().all() == [job]


def test_dev_all_and_flow_selection(repo: Path, cli: Cli) -> None:
    feature_branch(repo)
    code, out, _ = cli(repo, "deploy", "--target", "local", "--all", "--json")
    assert code == 0
    assert sorted(r["flow"] for r in json.loads(out)) == [INGEST, REVENUE]
    code, out, _ = cli(repo, "deploy", "--target", "local", "--flow", str(repo / INGEST), "--json")
    assert [(r["flow"], r["action"]) for r in json.loads(out)] == [(INGEST, "unchanged")]
    code, _, err = cli(repo, "deploy", "--target", "local", "--all", "--changed")
    assert (code, err.strip()) == (
        2,
        "error: --all and --changed exclude each other: pass one of them",
    )


def test_dev_on_main_has_nothing_to_deploy(repo: Path, cli: Cli) -> None:
    code, out, err = cli(repo, "deploy", "--target", "local", "--json")
    assert (code, json.loads(out)) == (0, [])
    assert err.strip() == (
        "nothing to deploy: 0 flow(s) affected since main (pass --all to deploy every flow)"
    )
    assert registry().all() == []


def test_dev_without_a_main_branch_says_what_to_do(repo: Path, cli: Cli) -> None:
    git(repo, "branch", "-m", "main", "trunk")
    code, _, err = cli(repo, "deploy", "--target", "local")
    assert code == 2
    assert err.strip() == (
        "error: no origin/main or main branch to compare with: git fetch origin main, or pass --all"
    )


def test_dry_run_writes_nothing(repo: Path, cli: Cli) -> None:
    feature_branch(repo)
    code, out, _ = cli(repo, "deploy", "--target", "local", "--dry-run", "--json")
    assert code == 0
    assert [r["action"] for r in json.loads(out)] == ["would create"]
    assert registry().all() == []
    assert not StatePaths.for_repo(repo).volumes.exists()


@pytest.mark.parametrize("env", ["local", "qa"])
def test_deploy_only_to_dev_staging_or_prod(repo: Path, cli: Cli, env: str) -> None:
    code, _, err = cli(repo, "deploy", "--env", env)
    assert code == 2
    assert err.strip() == (
        f"error: --env {env}: deploy to dev, staging or prod (`meshops run` runs locally)"
    )


def test_prod_refuses_without_a_release_tag_at_head(repo: Path, cli: Cli) -> None:
    commit = head(repo)
    code, out, err = cli(repo, "deploy", "--env", "prod", "--target", "local")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: prod deploys only from a release tag vX.Y.Z at HEAD (or <domain>/vX.Y.Z for one "
        f"domain), and HEAD {commit[:8]} is not tagged: tag the release (git tag vX.Y.Z) and "
        "deploy from that tag"
    ]
    git(repo, "tag", "release-1")
    code, _, err = cli(repo, "deploy", "--env", "prod", "--target", "local")
    assert code == 2
    assert "is tagged release-1: tag the release" in err
    assert registry().all() == []


def test_prod_refuses_a_dirty_worktree(repo: Path, cli: Cli) -> None:
    git(repo, "tag", "v1.0.0")
    (repo / REVENUE / "aggregate.py").write_text("print('not committed')\n")
    code, _, err = cli(repo, "deploy", "--env", "prod", "--target", "local")
    assert code == 2
    assert err.splitlines() == [
        "error: the worktree has uncommitted changes: prod deploys only the committed code of a "
        "release tag; commit or stash them"
    ]
    (repo / "notes.txt").write_text("untracked counts too\n")
    git(repo, "checkout", "--", REVENUE)
    assert cli(repo, "deploy", "--env", "prod", "--target", "local")[0] == 2
    assert registry().all() == []


def test_prod_refuses_a_tag_override_that_is_not_at_head(repo: Path, cli: Cli) -> None:
    code, _, err = cli(repo, "--tag", "v9.9.9", "deploy", "--env", "prod", "--target", "local")
    assert code == 2
    assert err.strip() == (
        f"error: release tag v9.9.9 is not at HEAD {head(repo)[:8]}: git checkout v9.9.9 and deploy"
    )


def test_prod_deploys_all_then_changed_since_the_previous_release(repo: Path, cli: Cli) -> None:
    git(repo, "tag", "v1.0.0")
    pass_staging(repo)
    code, out, err = cli(repo, "deploy", "--env", "prod", "--target", "local", "--json")
    assert code == 0, err
    assert {r["job"]: r["action"] for r in json.loads(out)} == {
        "transport_taxinyc_prod_ingest": "created",
        "transport_taxinyc_prod_revenue": "created",
    }
    assert "as prod, pinned to tag v1.0.0" in err
    (repo / INGEST / "load.py").write_text("# Databricks notebook source\nprint('v2')\n")
    commit_all(repo, "ingest v2")
    git(repo, "tag", "v1.1.0")
    pass_staging(repo)

    code, out, _ = cli(repo, "deploy", "--env", "prod", "--target", "local", "--changed", "--json")

    assert [(r["job"], r["action"]) for r in json.loads(out)] == [
        ("transport_taxinyc_prod_ingest", "updated")
    ]
    jobs = {j.name: j.settings for j in registry().all()}
    assert jobs["transport_taxinyc_prod_ingest"]["git_source"]["git_tag"] == "v1.1.0"
    assert jobs["transport_taxinyc_prod_revenue"]["git_source"]["git_tag"] == "v1.0.0"
    assert jobs["transport_taxinyc_prod_ingest"]["run_as"] == {
        "service_principal_name": "6f1e2d3c-0000-4000-8000-00000000beef"
    }


def test_every_flow_is_validated_before_the_target_is_opened(repo: Path, cli: Cli) -> None:
    feature_branch(repo)
    (repo / INGEST / "deployment.yml").write_text("tasks: {}\n")
    commit_all(repo, "break ingest")
    # no workspace is configured: opening the databricks target would fail on auth
    code, _, err = cli(repo, "deploy", "--all", "--target", "databricks")
    assert code == 2
    assert f"{INGEST}/deployment.yml:1: tasks: expected a list, got mapping {{}}" in err
    assert "authenticate" not in err


def test_databricks_target_without_credentials_is_one_line(repo: Path, cli: Cli) -> None:
    feature_branch(repo)
    code, _, err = cli(repo, "deploy", "--target", "databricks")
    assert code == 1
    (line,) = err.strip().splitlines()[-1:]
    assert line.startswith("error: cannot authenticate to Databricks (")
    assert line.endswith(
        "set DATABRICKS_HOST and DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and "
        "DATABRICKS_CLIENT_SECRET for a service principal, or DATABRICKS_CONFIG_PROFILE"
    )


def test_jobs_lists_what_was_deployed(repo: Path, cli: Cli) -> None:
    commit = feature_branch(repo)
    cli(repo, "deploy", "--target", "local")
    code, out, _ = cli(repo, "jobs", "--target", "local", "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "job_id": 1,
            "name": f"transport_taxinyc_dev_revenue_janedoe_featx_{commit[:8]}",
            "flow": REVENUE,
            "deployment": f"dev_janedoe_featx_{commit[:8]}",
            "version": commit[:8],
            "ref": commit[:8],
        }
    ]


def test_auto_target_is_databricks_only_when_a_workspace_is_configured(tmp_path: Path) -> None:
    cfg = tmp_path / "databrickscfg"
    assert targets.choose("auto", {"DATABRICKS_CONFIG_FILE": str(cfg)}) == "local"
    assert targets.choose("auto", {"DATABRICKS_HOST": "https://x.example"}) == "databricks"
    assert targets.choose("auto", {"DATABRICKS_CONFIG_PROFILE": "ci"}) == "databricks"
    cfg.write_text("[DEFAULT]\nhost = https://x.example\ntoken = dapi123456\n")
    assert targets.choose("auto", {"DATABRICKS_CONFIG_FILE": str(cfg)}) == "databricks"
    assert targets.choose("local", dict(os.environ)) == "local"
    with pytest.raises(InvalidInput, match="--target 'cloud' is not known"):
        targets.choose("cloud", {})


def test_dev_refuses_uncommitted_settings_the_commit_would_not_match(repo: Path, cli: Cli) -> None:
    feature_branch(repo)
    spec = repo / REVENUE / "deployment.yml"
    spec.write_text(spec.read_text() + "# retries to come\n")
    code, _, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--all")
    assert code == 2
    assert err.splitlines()[-1] == (
        f"error: uncommitted changes to {REVENUE}/deployment.yml would not match the commit "
        f"{head(repo)[:8]} the jobs run: commit them (or stash them) and deploy again"
    )
    assert registry().all() == []
    # an uncommitted notebook is only a note: jobs run the notebook of the commit
    git(repo, "checkout", "--", REVENUE)
    (repo / REVENUE / "aggregate.py").write_text("print('draft')\n")
    code, _, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--all")
    assert code == 0, err
    assert "uncommitted changes are not deployed" in err


def test_meshops_env_chooses_the_env_flags_still_win(
    repo: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHOPS_ENV", "prod")
    code, _, err = cli(repo, "deploy", "--target", "local")
    assert code == 2
    assert "release tag" in err  # prod, refused: HEAD is not a release
    commit = feature_branch(repo)
    code, out, err = cli(repo, "deploy", "--env", "dev", "--target", "local", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["job"].endswith(f"_dev_revenue_janedoe_featx_{commit[:8]}")
