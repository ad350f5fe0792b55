"""The whole life of a deployment, as the issue's "done when" describes it, in a clone:

feat-x deploys dev; its job runs and writes tables under feat-x names; v1.0.0 deploys
prod pinned to the tag; deploying again writes nothing; once feat-x is deleted on the
remote, cleanup removes its jobs and schemas and leaves prod alone. Once on the local
target (real Spark) and once against the workspace double (exact requests).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from meshops import deploy
from meshops.engine.runs import RunStore
from meshops.state import StatePaths
from meshops.targets.databricks import DatabricksTarget
from meshops.targets.local import JobRegistry
from meshops.testing.integration import pass_staging
from meshops.testing.mesh import (
    GIT_ENV,
    FlowDef,
    commit_all,
    git,
    init_repo,
    platform_files,
    write_flow,
    write_lib,
)
from meshops.testing.workspace import WorkspaceDouble

pytestmark = pytest.mark.integration

Cli = Callable[..., tuple[int, str, str]]

TAXI = "orgs/acme/domains/transport/projects/taxinyc"
REVENUE = f"{TAXI}/flows/prep/revenue"
CATALOG = "acme_transport_taxinyc"
NOTEBOOK = """# Databricks notebook source
import taxilib  # the project lib: the job gets its wheel
from brickops.datamesh.naming import catname_from_path, dbname, tablename

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='revenue', cat=catalog)}")

# COMMAND ----------

rows = ROWS
spark.range(rows).write.mode("overwrite").saveAsTable(
    tablename(tbl="by_borough", db="revenue", cat=catalog)
)
"""


def make_clone(tmp_path: Path, source_root: Path) -> Path:
    """An origin with one flow and a project lib, and a clone of it on a new branch feat-x."""
    origin = tmp_path / "origin"
    platform_files(source_root, origin)
    folder = write_flow(origin, FlowDef(name="revenue", tasks={"aggregate": ()}))
    (folder / "aggregate.py").write_text(NOTEBOOK.replace("ROWS", "3"))
    write_lib(origin, f"{TAXI}/libs/taxilib", "taxilib")
    init_repo(origin)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
    git(clone, "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
    git(clone, "checkout", "-q", "-b", "feat-x")
    (clone / REVENUE / "aggregate.py").write_text(NOTEBOOK.replace("ROWS", "4"))
    commit_all(clone, "revenue by borough: four rows")
    git(clone, "push", "-q", "-u", "origin", "feat-x")
    return clone


def release(clone: Path) -> None:
    """feat-x merged into main on the remote and released as v1.0.0 (the branch stays until
    deleted); prod deploys only a tag origin/main holds."""
    git(clone.parent / "origin", "merge", "-q", "--ff-only", "feat-x")
    git(clone, "fetch", "-q", "origin")
    git(clone, "checkout", "-q", "main")
    git(clone, "merge", "-q", "--ff-only", "origin/main")
    git(clone, "tag", "v1.0.0")


@pytest.mark.spark
def test_local_target_life_cycle(
    tmp_path: Path,
    meshops_repo_root: Path,
    spark: object,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clone = make_clone(tmp_path, meshops_repo_root)
    # as if the workspace were installed (nox does it): the notebook imports the project lib
    monkeypatch.syspath_prepend(str(clone / TAXI / "libs/taxilib/src"))
    commit = git(clone, "rev-parse", "HEAD")
    dev_job = f"transport_taxinyc_dev_revenue_janedoe_featx_{commit[:8]}"
    dev_schema = f"{CATALOG}.dev_janedoe_featx_{commit[:8]}_revenue"
    state = StatePaths.for_repo(clone)
    registry = JobRegistry(state.jobs_db)

    # a push to feat-x: deploy-dev deploys the affected flow, pinned to the commit
    code, out, err = cli(clone, "deploy", "--env", "dev", "--target", "local", "--json")
    assert code == 0, err
    assert [(r["job"], r["action"]) for r in json.loads(out)] == [(dev_job, "created")]
    assert "affected since origin/main" in err
    (job,) = [j for j in registry.all() if j.name == dev_job]
    assert job.settings["git_source"]["git_commit"] == commit

    # run-job: the code at that commit, in a worktree, writes tables under feat-x names
    code, _, err = cli(clone, "run-job", dev_job)
    assert code == 0, err
    assert spark.table(f"{dev_schema}.by_borough").count() == 4  # type: ignore[attr-defined]
    (run,) = [r for r in RunStore(state.runs_db).list(50) if r.job_name == dev_job]
    assert (run.status, run.commit, run.env) == ("SUCCESS", commit, "dev")
    assert (state.worktrees / commit / REVENUE / "aggregate.py").is_file()

    # release v1.0.0 (its commit passed staging): prod names, pinned to the tag
    release(clone)
    pass_staging(clone)
    code, out, err = cli(clone, "deploy", "--env", "prod", "--target", "local", "--json")
    assert code == 0, err
    assert [(r["job"], r["action"]) for r in json.loads(out)] == [
        ("transport_taxinyc_prod_revenue", "created")
    ]
    prod = registry.named("transport_taxinyc_prod_revenue")[0]
    assert prod.settings["git_source"]["git_tag"] == "v1.0.0"
    assert prod.settings["tags"]["version"] == "v1.0.0"
    code, _, err = cli(clone, "run-job", "transport_taxinyc_prod_revenue")
    assert code == 0, err
    assert spark.table(f"{CATALOG}.revenue.by_borough").count() == 4  # type: ignore[attr-defined]

    # deploying again writes nothing
    before = registry.all()
    code, out, _ = cli(clone, "deploy", "--env", "prod", "--target", "local", "--json")
    assert [r["action"] for r in json.loads(out)] == ["unchanged"]
    assert registry.all() == before

    # feat-x is deleted on the remote: cleanup removes its job and schema, prod stays
    git(clone, "push", "-q", "origin", "--delete", "feat-x")
    code, out, _ = cli(clone, "cleanup", "--target", "local", "--json")
    assert code == 0
    planned = [(r["kind"], r["name"]) for r in json.loads(out) if r["action"] == "would delete"]
    assert planned == [("job", dev_job), ("schema", dev_schema)]
    code, out, err = cli(clone, "cleanup", "--target", "local", "--apply", "--json")
    assert code == 0, err
    deleted = [(r["kind"], r["name"]) for r in json.loads(out) if r["action"] == "deleted"]
    assert deleted == planned
    assert registry.named(dev_job) == []
    assert registry.named("transport_taxinyc_prod_revenue") == [prod]
    schemas = {r[0] for r in spark.sql(f"SHOW SCHEMAS IN {CATALOG}").collect()}  # type: ignore[attr-defined]
    assert dev_schema.split(".")[1] not in schemas
    assert spark.table(f"{CATALOG}.revenue.by_borough").count() == 4  # type: ignore[attr-defined]


def test_workspace_double_life_cycle_makes_exactly_the_expected_requests(
    tmp_path: Path,
    meshops_repo_root: Path,
    workspace_double: WorkspaceDouble,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws = workspace_double
    ws.add_volume("acme_platform", "artifacts", "wheels")
    monkeypatch.setenv("DATABRICKS_HOST", ws.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", ws.token)
    caplog.set_level(logging.DEBUG)
    clone = make_clone(tmp_path, meshops_repo_root)
    commit = git(clone, "rev-parse", "HEAD")
    deployment = f"dev_janedoe_featx_{commit[:8]}"
    wheels = "/api/2.0/fs/files/Volumes/acme_platform/artifacts/wheels"
    printed: list[str] = []

    def run(*args: str) -> list[tuple[str, str]]:
        ws.request_log.clear()
        code, out, err = cli(clone, *args)
        printed.extend([out, err])
        assert code == 0, err
        presigned = "/_double/presigned/"  # a fresh token each time
        made = [
            (r.method, presigned + "*" if r.path.startswith(presigned) else r.path)
            for r in ws.request_log
            if r.path != "/api/2.0/fs/endpoints"  # the SDK's own discovery, once per client
        ]
        return without_grants(made) if args[0] == "deploy" else made

    def without_grants(made: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """A deploy's requests but its Unity Catalog grants and their record, which
        test_grants.py counts exactly."""
        kept: list[tuple[str, str]] = []
        for i, (method, path) in enumerate(made):
            later = made[i + 1][1] if i + 1 < len(made) else ""
            if (
                "/unity-catalog/permissions/" in path
                or "/unity-catalog/catalogs/" in path
                or path.endswith("/.meshops/grants.json")
                or (method in ("GET", "PATCH") and "/unity-catalog/schemas/" in path)
                or (path.endswith("/create-download-url") and later.endswith("grants.json"))
            ):
                continue
            kept.append((method, path))
        return kept

    def locked(lock: str, *calls: tuple[str, str]) -> list[tuple[str, str]]:
        """A deploy's requests: reachability probe, lock taken, `calls`, lock read and removed."""
        return [
            ("GET", "/.well-known/databricks-config"),
            ("GET", "/api/2.2/jobs/list"),  # is the workspace there (one short try)
            ("PUT", f"{wheels}/{lock}/.meshops/deploy.lock"),
            *calls,
            ("POST", "/api/2.0/fs/create-download-url"),
            ("GET", "/_double/presigned/*"),
            ("DELETE", f"{wheels}/{lock}/.meshops/deploy.lock"),
        ]

    ws.add_catalog(CATALOG)
    assert run("deploy", "--env", "dev", "--json") == locked(  # auto: workspace configured
        deployment,
        ("GET", "/api/2.2/jobs/list"),
        ("PUT", f"{wheels}/{deployment}/taxilib-0.1.0-py3-none-any.whl"),
        ("POST", "/api/2.1/unity-catalog/schemas"),  # the dev schema, with evidence
        ("POST", "/api/2.2/jobs/create"),
    )
    (create,) = ws.request_log.filter("POST", "/api/2.2/jobs/create")
    assert create.body["name"] == f"transport_taxinyc_dev_revenue_janedoe_featx_{commit[:8]}"
    assert create.body["git_source"]["git_commit"] == commit
    assert create.body["access_control_list"] == [
        {"group_name": "transport-owners", "permission_level": "CAN_MANAGE"},
        {"group_name": "acme-data-readers", "permission_level": "CAN_VIEW"},
    ]
    # the dev schema, created with meshops' evidence (the janitor deletes no schema without
    # it) before the job's run fills it
    (schema,) = ws.request_log.filter("POST", "/api/2.1/unity-catalog/schemas")
    assert schema.body["name"] == f"{deployment}_revenue"
    assert schema.body["properties"] == {"meshops.deployment": deployment}

    release(clone)
    pass_staging(clone, DatabricksTarget(ws.client()))  # the commit passed staging

    def gated(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """A prod deploy's requests: the gate reads the commit's integration record first."""
        record = [("POST", "/api/2.0/fs/create-download-url"), ("GET", "/_double/presigned/*")]
        return requests[:1] + record + requests[1:]

    assert run("deploy", "--env", "prod", "--target", "databricks") == gated(
        locked(
            "prod",
            ("GET", "/api/2.2/jobs/list"),
            ("PUT", f"{wheels}/prod/v1.0.0/taxilib-0.1.0-py3-none-any.whl"),
            ("POST", "/api/2.2/jobs/create"),
            ("POST", "/api/2.1/unity-catalog/schemas"),  # the prod schema, to own and grant
        )
    )
    (create,) = ws.request_log.filter("POST", "/api/2.2/jobs/create")
    assert create.body["name"] == "transport_taxinyc_prod_revenue"
    assert create.body["git_source"] == {
        "git_url": "https://github.com/acme/meshops",
        "git_provider": "gitHub",
        "git_tag": "v1.0.0",
    }
    assert create.body["run_as"] == {
        "service_principal_name": "6f1e2d3c-0000-4000-8000-00000000beef"
    }

    assert run("deploy", "--env", "prod") == gated(
        locked(
            "prod",
            ("GET", "/api/2.2/jobs/list"),
            ("POST", "/api/2.0/fs/create-download-url"),  # the grants record, read: no change
            ("GET", "/_double/presigned/*"),
        )
    )

    git(clone, "push", "-q", "origin", "--delete", "feat-x")
    (dev_id,) = [
        i for i, j in ws.jobs().items() if j["settings"]["tags"]["deployment"] == deployment
    ]
    assert run("cleanup", "--apply") == [
        ("GET", "/.well-known/databricks-config"),
        ("GET", "/api/2.2/jobs/list"),
        ("GET", "/api/2.0/pipelines"),
        ("GET", "/api/2.1/unity-catalog/schemas"),
        ("GET", f"/api/2.1/unity-catalog/schemas/{CATALOG}.{deployment}_revenue"),
        ("POST", "/api/2.2/jobs/delete"),
        ("DELETE", f"/api/2.1/unity-catalog/schemas/{CATALOG}.{deployment}_revenue"),
    ]
    assert ws.request_log.filter("POST", "/api/2.2/jobs/delete")[0].body == {"job_id": dev_id}
    assert [j["settings"]["name"] for j in ws.jobs().values()] == ["transport_taxinyc_prod_revenue"]
    assert [s for s in ws.schemas() if s.startswith(CATALOG)] == [f"{CATALOG}.revenue"]

    # the token reached the double as a bearer header, and nowhere else
    assert all(r.auth in ("valid", "not-required") for r in ws.request_log)
    assert ws.token not in "".join(printed) + caplog.text


def test_no_token_in_output_or_logs_when_things_fail(
    tmp_path: Path,
    meshops_repo_root: Path,
    workspace_double: WorkspaceDouble,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws = workspace_double
    ws.add_volume("acme_platform", "artifacts", "wheels")
    caplog.set_level(logging.DEBUG)
    clone = make_clone(tmp_path, meshops_repo_root)
    monkeypatch.setenv("DATABRICKS_HOST", ws.host)
    printed: list[str] = []

    # a wrong token: 401, one line, the token never shown
    wrong = "dapi-wrong-but-still-secret-0123456789"  # pragma: allowlist secret
    monkeypatch.setenv("DATABRICKS_TOKEN", wrong)
    code, out, err = cli(clone, "deploy", "--target", "databricks")
    printed.extend([out, err])
    assert code == 1
    assert err.strip().splitlines()[-1] == "error: Invalid access token."

    # a server error on create: the job fails, the report says why, exit 1
    monkeypatch.setenv("DATABRICKS_TOKEN", ws.token)
    ws.fail_next("POST", "/api/2.2/jobs/create", status=500, times=deploy.CREATE_ATTEMPTS)
    code, out, err = cli(clone, "deploy", "--target", "databricks", "--json")
    printed.extend([out, err])
    assert code == 1
    (result,) = json.loads(out)
    assert (result["action"], result["reason"]) == ("failed", "Internal server error.")
    assert err.strip().splitlines()[-1] == (
        f"error: 1 of 1 jobs failed: {result['job']} (Internal server error.); "
        "fix the cause and deploy again to converge"
    )

    everything = "".join(printed) + caplog.text
    assert wrong not in everything
    assert ws.token not in everything
