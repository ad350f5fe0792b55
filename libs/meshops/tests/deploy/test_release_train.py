"""The release train in a clone: on the local target (real Spark, real git, real pytest),
and against the workspace double (exact Jobs API requests).

On the local target:

merge to main -> deploy staging -> the staging jobs run and the flows' integration tests pass
(recorded for the commit) -> tag v1.0.0 -> prod. A change merged to main and tagged
`transport/v1.1.0` is refused until its commit passed staging; once it has, the domain tag
deploys transport's prod job only, pinned to the tag, and finance's prod job is untouched. A
repository tag on that commit is refused: finance was not tested there.

Two tiny flows keep Spark cheap: transport's writes three rows, finance's (which sorts first
but reads transport's table, so it runs second) copies them. Against the double the same train
runs with jobs the double "runs" at once, and integration tests that need no Spark; a failed
integration test is recorded, and prod refuses its commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from meshops.state import StatePaths
from meshops.targets.local import JobRegistry
from meshops.testing.mesh import (
    GIT_ENV,
    FlowDef,
    commit_all,
    git,
    init_repo,
    platform_files,
    write_flow,
)
from meshops.testing.workspace import WorkspaceDouble

pytestmark = pytest.mark.integration

Cli = Callable[..., tuple[int, str, str]]

FARES = "orgs/acme/domains/transport/projects/rail/flows/prep/fares"
SHARE = "orgs/acme/domains/finance/projects/ledger/flows/prep/fareshare"
FARES_NOTEBOOK = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='fares', cat=catalog)}")
spark.range(ROWS).write.mode("overwrite").saveAsTable(
    tablename(tbl="by_line", db="fares", cat=catalog)
)
"""
SHARE_NOTEBOOK = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename

transport = "acme_transport_rail"
fares = spark.table(tablename(tbl="by_line", db="fares", cat=transport))
catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='fareshare', cat=catalog)}")
fares.write.mode("overwrite").saveAsTable(tablename(tbl="share", db="fareshare", cat=catalog))
"""
FARES_TEST = """
def test_the_staging_table_has_rows(meshops_deployment):
    assert meshops_deployment.ident.env == "staging"
    table = meshops_deployment.table(__file__, "by_line")
    assert table == "acme_transport_rail.staging_fares.by_line"
    assert meshops_deployment.spark.table(table).count() > 0
"""
SHARE_TEST = """
def test_the_share_reconciles_with_transport(meshops_deployment):
    spark = meshops_deployment.spark
    fares = meshops_deployment.table("FARES", "by_line")
    share = meshops_deployment.table(__file__, "share")
    assert spark.table(share).count() == spark.table(fares).count() > 0
""".replace("FARES", FARES)


def make_clone(
    tmp_path: Path, source_root: Path, fares_test: str = FARES_TEST, share_test: str = SHARE_TEST
) -> Path:
    """A remote with both flows and their integration tests on main, and a clone of it."""
    origin = tmp_path / "origin"
    platform_files(source_root, origin)
    fares = write_flow(
        origin, FlowDef(domain="transport", project="rail", name="fares", tasks={"load": ()})
    )
    (fares / "load.py").write_text(FARES_NOTEBOOK.replace("ROWS", "3"))
    (fares / "tests/integration").mkdir(parents=True)
    (fares / "tests/integration/test_fares.py").write_text(fares_test)
    share = write_flow(
        origin, FlowDef(domain="finance", project="ledger", name="fareshare", tasks={"copy": ()})
    )
    (share / "copy.py").write_text(SHARE_NOTEBOOK)
    (share / "tests/integration").mkdir(parents=True)
    (share / "tests/integration/test_share.py").write_text(share_test)
    init_repo(origin)
    remote = tmp_path / "origin.git"  # bare: the clone pushes its merges to main
    git(tmp_path, "clone", "-q", "--bare", str(origin), str(remote))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    git(clone, "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
    git(clone, "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
    return clone


def merge_to_main(clone: Path, rows: int) -> str:
    """A change to transport's notebook on a branch, merged into main and pushed."""
    git(clone, "checkout", "-q", "-b", "more-fares")
    (clone / FARES / "load.py").write_text(FARES_NOTEBOOK.replace("ROWS", str(rows)))
    commit_all(clone, f"fares: {rows} lines")
    git(clone, "checkout", "-q", "main")
    git(clone, "merge", "-q", "--no-ff", "-m", "merge more-fares", "more-fares")
    git(clone, "push", "-q", "origin", "main")
    return git(clone, "rev-parse", "HEAD")


def outcomes(out: str) -> dict[str, tuple[str, str, str]]:
    return {r["flow"]: (r["run"], r["tests"], r["status"]) for r in json.loads(out)}


@pytest.mark.spark
def test_merge_staging_integration_tag_prod_and_a_domain_release(
    tmp_path: Path, meshops_repo_root: Path, spark: object, cli: Cli
) -> None:
    clone = make_clone(tmp_path, meshops_repo_root)
    first = git(clone, "rev-parse", "HEAD")
    registry = JobRegistry(StatePaths.for_repo(clone).jobs_db)

    # main -> staging: one long-lived deployment, pinned to the commit
    code, out, err = cli(clone, "deploy", "--env", "staging", "--target", "local", "--json")
    assert code == 0, err
    assert sorted((r["job"], r["action"]) for r in json.loads(out)) == [
        ("finance_ledger_staging_fareshare", "created"),
        ("transport_rail_staging_fares", "created"),
    ]
    (staged,) = registry.named("transport_rail_staging_fares")
    assert staged.settings["git_source"]["git_commit"] == first
    assert staged.settings["tags"]["deployment"] == "staging"

    # integration: transport's job first (finance reads its table), then both flows' tests
    code, out, err = cli(clone, "integration", "--env", "staging", "--target", "local", "--json")
    assert code == 0, err
    assert list(outcomes(out).items()) == [
        (FARES, ("passed", "passed", "passed")),
        (SHARE, ("passed", "passed", "passed")),
    ]
    assert "2 passed" in err  # pytest's own report, beside the progress (stdout: the result)
    assert spark.table("acme_finance_ledger.staging_fareshare.share").count() == 3  # type: ignore[attr-defined]

    # tag -> prod: both flows, pinned to the tag
    git(clone, "tag", "v1.0.0")
    code, out, err = cli(clone, "deploy", "--env", "prod", "--target", "local", "--json")
    assert code == 0, err
    assert sorted((r["job"], r["action"]) for r in json.loads(out)) == [
        ("finance_ledger_prod_fareshare", "created"),
        ("transport_rail_prod_fares", "created"),
    ]
    (finance_prod,) = registry.named("finance_ledger_prod_fareshare")

    # a change merged to main and released by its domain before staging saw it: refused
    second = merge_to_main(clone, rows=5)
    git(clone, "tag", "transport/v1.1.0")
    code, out, err = cli(clone, "deploy", "--env", "prod", "--target", "local")
    assert (code, out) == (2, "")
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: transport/v1.1.0 ({second[:8]}) never passed staging: ")
    assert "`nox -s deploy-staging`, then `nox -s integration -- --env staging`" in line

    # staging at the merge, transport's integration only: the domain tag goes through
    assert cli(clone, "deploy", "--env", "staging", "--target", "local")[0] == 0
    code, out, err = cli(clone, "integration", "--target", "local", "--flow", FARES, "--json")
    assert code == 0, err
    assert outcomes(out) == {FARES: ("passed", "passed", "passed")}
    code, out, err = cli(clone, "deploy", "--env", "prod", "--target", "local", "--json")
    assert code == 0, err
    assert "all 1 flow(s) of domain transport" in err
    assert [(r["job"], r["action"]) for r in json.loads(out)] == [
        ("transport_rail_prod_fares", "updated")
    ]
    (fares_prod,) = registry.named("transport_rail_prod_fares")
    assert fares_prod.settings["git_source"]["git_tag"] == "transport/v1.1.0"
    assert fares_prod.settings["tags"]["version"] == "v1.1.0"
    assert "(transport release v1.1.0, tag transport/v1.1.0)" in fares_prod.settings["description"]
    assert registry.named("finance_ledger_prod_fareshare") == [finance_prod]  # untouched

    # a repository release of that commit would deploy finance too, which it never tested
    git(clone, "tag", "v1.2.0")
    code, _, err = cli(clone, "deploy", "--env", "prod", "--target", "local")
    assert code == 2
    assert err.strip() == (
        f"error: v1.2.0 ({second[:8]}) has not passed staging for {SHARE} (in no integration run "
        "of that commit); deploy that commit to staging and test it there (`nox -s "
        "deploy-staging`, then `nox -s integration -- --env staging`, at that commit), then "
        "deploy again"
    )


NAMES_TEST = """
def test_the_names_are_the_staging_job_s(meshops_deployment):
    assert meshops_deployment.target == "databricks"
    assert meshops_deployment.names(__file__).job == "JOB"
"""
JOBS = "/api/2.2/jobs/"
RECORDS = "/Volumes/acme_platform/artifacts/wheels/staging/.meshops/integration"


def test_the_train_against_the_workspace_double_touches_only_the_released_domain_s_jobs(
    tmp_path: Path,
    meshops_repo_root: Path,
    workspace_double: WorkspaceDouble,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws = workspace_double
    ws.add_volume("acme_platform", "artifacts", "wheels")
    for catalog in ("acme_transport_rail", "acme_finance_ledger"):
        ws.add_catalog(catalog)
    monkeypatch.setenv("DATABRICKS_HOST", ws.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", ws.token)
    clone = make_clone(
        tmp_path,
        meshops_repo_root,
        NAMES_TEST.replace("JOB", "transport_rail_staging_fares"),
        NAMES_TEST.replace("JOB", "finance_ledger_staging_fareshare"),
    )

    def run(*args: str, code: int = 0) -> tuple[str, str]:
        ws.request_log.clear()
        got, out, err = cli(clone, *args)
        assert got == code, err
        return out, err

    def jobs_calls() -> list[tuple[str, str | int]]:
        """The Jobs API requests: method, path and the job they name (by name or id)."""
        return [
            (r.method, r.path.removeprefix(JOBS))
            + ((r.body.get("name") or r.body.get("job_id", ""),) if r.method == "POST" else ())
            for r in ws.request_log.all()
            if r.path.startswith(JOBS)
        ]

    def job_id(name: str) -> int:
        return next(i for i, j in ws.jobs().items() if j["settings"]["name"] == name)

    # staging, then its integration: each job run to its end (run-now, runs/get), in the
    # order finance's notebook reads transport's table; the tests; the record written
    run("deploy", "--env", "staging")
    assert sorted(j["settings"]["name"] for j in ws.jobs().values()) == [
        "finance_ledger_staging_fareshare",
        "transport_rail_staging_fares",
    ]
    fares, share = (
        job_id("transport_rail_staging_fares"),
        job_id("finance_ledger_staging_fareshare"),
    )
    out, _ = run("integration", "--json")
    assert jobs_calls() == [
        ("GET", "list"),
        ("POST", "run-now", fares),
        ("GET", "runs/get"),
        ("POST", "run-now", share),
        ("GET", "runs/get"),
    ]
    assert [(r["flow"], r["status"], r["tests_passed"]) for r in json.loads(out)] == [
        (FARES, "passed", 1),
        (SHARE, "passed", 1),
    ]
    first = git(clone, "rev-parse", "HEAD")
    (put,) = ws.request_log.filter("PUT", prefix="/api/2.0/fs/files/")
    assert put.path == f"/api/2.0/fs/files{RECORDS}/{first}.json"

    # v1.0.0: the gate reads the record, then both prod jobs are made
    git(clone, "tag", "v1.0.0")
    run("deploy", "--env", "prod")
    calls = jobs_calls()
    assert calls[:2] == [("GET", "list"), ("GET", "list")]  # reachable?, then the one list
    assert sorted(calls[2:]) == [  # written concurrently
        ("POST", "create", "finance_ledger_prod_fareshare"),
        ("POST", "create", "transport_rail_prod_fares"),
    ]
    finance_prod = job_id("finance_ledger_prod_fareshare")
    finance_before = ws.jobs()[finance_prod]

    # transport/v1.1.0 of a merge staging has not seen: refused before any job is touched
    merge_to_main(clone, rows=5)
    git(clone, "tag", "transport/v1.1.0")
    _, err = run("deploy", "--env", "prod", code=2)
    assert "never passed staging" in err
    assert jobs_calls() == []

    # staged and tested (transport only): the domain tag updates transport's prod job alone
    run("deploy", "--env", "staging")
    out, _ = run("integration", "--flow", FARES, "--json")
    assert jobs_calls() == [("GET", "list"), ("POST", "run-now", fares), ("GET", "runs/get")]
    run("deploy", "--env", "prod")
    fares_prod = job_id("transport_rail_prod_fares")
    assert jobs_calls() == [("GET", "list"), ("GET", "list"), ("POST", "reset", fares_prod)]
    assert not [r for r in ws.request_log.all() if str(finance_prod) in r.path + str(r.body)]
    assert ws.jobs()[finance_prod] == finance_before
    settings = ws.jobs()[fares_prod]["settings"]
    assert settings["git_source"]["git_tag"] == "transport/v1.1.0"
    assert settings["tags"]["version"] == "v1.1.0"

    # a failing integration test: exit 1, recorded, and prod refuses the commit
    git(clone, "checkout", "-q", "-b", "break-share")
    (clone / SHARE / "tests/integration/test_share.py").write_text(
        NAMES_TEST.replace("JOB", "not_the_job")
    )
    commit_all(clone, "a wrong expectation")
    git(clone, "checkout", "-q", "main")
    git(clone, "merge", "-q", "--ff-only", "break-share")
    git(clone, "push", "-q", "origin", "main")
    run("deploy", "--env", "staging")
    out, err = run("integration", "--json", code=1)
    assert [(r["flow"], r["status"], r["reason"]) for r in json.loads(out)] == [
        (FARES, "passed", ""),
        (SHARE, "failed", "1 integration test(s) failed"),
    ]
    assert err.strip().splitlines()[-1] == (
        f"error: integration of commit {git(clone, 'rev-parse', 'HEAD')[:8]} failed for 1 of 2 "
        f"flow(s) ({SHARE}: 1 integration test(s) failed); recorded: prod refuses this commit "
        "until a run passes"
    )
    git(clone, "tag", "v1.2.0")
    _, err = run("deploy", "--env", "prod", code=2)
    assert err.strip().startswith(
        f"error: v1.2.0 ({git(clone, 'rev-parse', 'HEAD')[:8]}) did not pass staging: the "
        f"integration run of {SHARE} failed there; "
    )
    assert ws.token not in out + err
