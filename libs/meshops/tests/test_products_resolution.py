"""Reads of data products on real local Spark: a consumer on a branch that changes only it
reads the producer's newest local build or its prod table, never rebuilding the producer; a
dev deployment of the consumer alone carries prod tables in its job parameters and its
run-job reads them; a breaking change to a product fails the producer's run naming the
consumer; a run never writes a table it reads from another deployment."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from meshops import context, discover, identity, products
from meshops.cli import app
from meshops.engine import flowrun, resolve, session, view
from meshops.errors import MeshopsError
from meshops.state import StatePaths
from meshops.targets.local import JobRegistry
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow
from meshops.testing.workspace import WorkspaceDouble

pytestmark = [pytest.mark.spark, pytest.mark.integration]

PRODUCER = FlowDef(name="revenue", tasks={"aggregate": ()})
CONSUMER = FlowDef(domain="finance", project="reporting", name="share", tasks={"share": ()})
PRODUCT = "transport.taxinyc.fares_by_borough"
PROD_TABLE = "acme_transport_taxinyc.revenue.fares_by_borough"
PRODUCTS_YML = """products:
  fares_by_borough:
    project: taxinyc
    flow: revenue
    description: fares per borough
    columns:
      - {name: borough, type: string}
      - {name: fares, type: double}
  never_built:
    project: taxinyc
    flow: revenue
    description: declared, never written
    columns: [{name: x, type: bigint}]
"""
AGGREGATE = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='revenue', cat=catalog)}")
frame = spark.sql("SELECT 'Bronx' AS borough, CAST(FARES AS DOUBLE) AS fares")
name = tablename(tbl="fares_by_borough", db="revenue", cat=catalog)
frame.write.mode("overwrite").saveAsTable(name)
"""
SHARE = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename
from dataproducts import table

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='share', cat=catalog)}")
source = table("transport.taxinyc.fares_by_borough")
target = tablename(tbl="share", db="share", cat=catalog)
spark.table(source).write.mode("overwrite").saveAsTable(WHERE)
dbutils.notebook.exit(source)
"""


def write_mesh(root: Path, *, where: str = "target") -> None:
    write_flow(root, PRODUCER)
    folder = write_flow(root, CONSUMER)
    (root / PRODUCER.rel / "aggregate.py").write_text(AGGREGATE.replace("FARES", "12.5"))
    (folder / "share.py").write_text(SHARE.replace("WHERE", where))
    (root / "orgs/acme/domains/transport/products.yml").write_text(PRODUCTS_YML)
    spec = folder / "deployment.yml"
    if "consumes" not in spec.read_text():
        spec.write_text(spec.read_text() + f"consumes: [{PRODUCT}]\n")


@pytest.fixture
def repo(mesh_repo: Path, spark: object) -> Iterator[Path]:
    write_mesh(mesh_repo)
    commit_all(mesh_repo, "transport publishes, finance consumes")
    session.register_catalogs(spark, ["acme_transport_taxinyc", "acme_finance_reporting"])  # type: ignore[arg-type]
    spark.sql(f"DROP TABLE IF EXISTS {PROD_TABLE}")  # type: ignore[attr-defined]
    yield mesh_repo
    spark.sql(f"DROP TABLE IF EXISTS {PROD_TABLE}")  # type: ignore[attr-defined]


def run(root: Path, flow: FlowDef, branch: str) -> flowrun.RunResult:
    ctx = context.detect(root, env="local", environ={}, overrides={"branch": branch})
    mesh = discover.scan(root)
    return flowrun.run_flow(ctx, mesh, mesh.find(flow.rel), flowrun.RunOptions(progress=False))


def finance_only_branch(root: Path) -> None:
    git(root, "checkout", "-q", "-b", "feat-finance")
    notebook = root / CONSUMER.rel / "share.py"
    notebook.write_text(notebook.read_text() + "\n# a finance-only change\n")
    commit_all(root, "finance only")


def flat(text: str) -> str:
    """Console output with its line wrapping undone."""
    return " ".join(text.split())


def summary_text(result: flowrun.RunResult) -> str:
    console = Console(record=True, width=300)
    console.print(view.summary(result))
    return console.export_text()


def test_a_finance_only_branch_reads_the_newest_local_build_then_prod(
    repo: Path, spark: object
) -> None:
    built = run(repo, PRODUCER, "main")
    assert built.ok, built.record.tasks
    own = built.names.table("fares_by_borough")
    finance_only_branch(repo)

    share = run(repo, CONSUMER, "feat-finance")  # transport never ran on this branch
    assert share.ok, share.record.tasks
    (read,) = share.product_reads
    assert (read.product, read.table) == (PRODUCT, own)
    assert read.source == f"{products.LOCAL_BUILD} {built.record.run_id}"
    assert share.record.tasks[0].result == own  # what the notebook's table() returned
    shown = flat(summary_text(share))
    assert f"reads {PRODUCT} -> {own} (local build {built.record.run_id})" in shown

    # the local target's prod table of the producer, once there, wins over a local build
    spark.sql("CREATE SCHEMA IF NOT EXISTS acme_transport_taxinyc.revenue")  # type: ignore[attr-defined]
    spark.sql(f"CREATE TABLE {PROD_TABLE} AS SELECT 'Queens' AS borough, 1.0D AS fares")  # type: ignore[attr-defined]
    again = run(repo, CONSUMER, "feat-finance")
    assert again.ok and [(r.table, r.source) for r in again.product_reads] == [
        (PROD_TABLE, products.PROD)
    ]
    table = again.names.table("share")
    assert [r[0] for r in spark.table(table).collect()] == ["Queens"]  # type: ignore[attr-defined]

    # the producer run on the same branch and commit: the same deployment's table
    same = run(repo, PRODUCER, "feat-finance")
    assert same.ok
    third = run(repo, CONSUMER, "feat-finance")
    assert [r.source for r in third.product_reads] == [products.SAME_DEPLOYMENT]


def test_nothing_to_read_says_which_flow_to_run_first(repo: Path, spark: object) -> None:
    ctx = context.detect(repo, env="local", environ={}, overrides={"branch": "nothing"})
    mesh = discover.scan(repo)
    catalog = products.load(mesh)
    state = StatePaths.for_repo(repo)
    with pytest.raises(MeshopsError) as caught:
        resolve.local(
            identity.of(ctx),
            spark,  # type: ignore[arg-type]
            state,
            catalog.by_id,
            ["transport.taxinyc.never_built"],
        )
    assert str(caught.value) == (
        f"transport.taxinyc.never_built has no table to read here: run `meshops run "
        f"{PRODUCER.rel}` first"
    )


def test_a_breaking_change_fails_the_producer_naming_the_consumer(
    repo: Path, spark: object
) -> None:
    (repo / PRODUCER.rel / "aggregate.py").write_text(  # fares becomes a string
        AGGREGATE.replace("CAST(FARES AS DOUBLE)", "'12.5'")
    )
    result = run(repo, PRODUCER, "breaking")
    assert not result.ok
    (task,) = result.record.tasks
    assert task.status == "FAILED"
    assert f"data contract of {PRODUCT} broken (fares: type double -> string)" in task.error
    assert f"consumers affected: {CONSUMER.rel}" in task.error
    assert CONSUMER.rel in (view.failures([result]) or "")

    code = CliRunner().invoke(
        app, ["--repo", str(repo), "--branch", "breaking", "contracts", "--json"]
    )
    assert code.exit_code == 1
    statuses = {s["product"]: s for s in json.loads(code.stdout)}
    assert statuses[PRODUCT]["status"] == "breaking"
    assert statuses[PRODUCT]["breaking"] == [{"column": "fares", "what": "type double -> string"}]
    assert statuses[PRODUCT]["consumers"] == [CONSUMER.rel]
    assert statuses["transport.taxinyc.never_built"]["status"] == "not built"


def test_a_run_never_writes_a_table_it_reads_from_another_deployment(
    repo: Path, spark: object
) -> None:
    built = run(repo, PRODUCER, "main")
    assert built.ok
    own = built.names.table("fares_by_borough")
    write_mesh(repo, where="source")  # the consumer overwrites what it reads
    commit_all(repo, "finance writes back")
    result = run(repo, CONSUMER, "writes-back")
    assert not result.ok
    (task,) = result.record.tasks
    assert "is another deployment's data product this run reads" in task.error
    assert [r[0] for r in spark.table(own).collect()] == ["Bronx"]  # type: ignore[attr-defined]


Cli = Callable[..., tuple[int, str, str]]


def test_a_dev_deployment_of_finance_alone_reads_transport_prod_tables(
    repo: Path,
    spark: object,
    workspace_double: WorkspaceDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MESHOPS_ENV", "MESHOPS_USER", "MESHOPS_BRANCH", "MESHOPS_COMMIT"):
        monkeypatch.delenv(name, raising=False)
    finance_only_branch(repo)
    commit = git(repo, "rev-parse", "HEAD")
    runner = CliRunner()

    # against the workspace double: finance alone, its job parameters name transport's prod
    ws = workspace_double
    ws.add_volume("acme_platform", "artifacts", "wheels")
    ws.add_catalog("acme_finance_reporting")
    with monkeypatch.context() as env:
        env.setenv("DATABRICKS_HOST", ws.host)
        env.setenv("DATABRICKS_TOKEN", ws.token)
        env.setenv("DATABRICKS_CONFIG_FILE", str(repo / "no-databrickscfg"))
        deployed = runner.invoke(
            app, ["--repo", str(repo), "deploy", "--env", "dev", "--target", "databricks"]
        )
    assert deployed.exit_code == 0, deployed.stderr
    assert f"{CONSUMER.rel} reads {PRODUCT} -> {PROD_TABLE} (prod)" in flat(deployed.stderr)
    (create,) = ws.request_log.filter("POST", "/api/2.2/jobs/create")
    assert create.body["tags"][identity.FLOW_TAG] == CONSUMER.rel  # finance alone
    params = {p["name"]: p["default"] for p in create.body["parameters"]}
    assert identity.products_of(params) == {PRODUCT: PROD_TABLE}

    # on the local target: the same job, and its run-job reads transport's prod table
    spark.sql("CREATE SCHEMA IF NOT EXISTS acme_transport_taxinyc.revenue")  # type: ignore[attr-defined]
    spark.sql(f"CREATE TABLE {PROD_TABLE} AS SELECT 'Manhattan' AS borough, 9.0D AS fares")  # type: ignore[attr-defined]
    local = runner.invoke(app, ["--repo", str(repo), "deploy", "--env", "dev", "--target", "local"])
    assert local.exit_code == 0, local.stderr
    job = f"finance_reporting_dev_share_janedoe_featfinance_{commit[:8]}"
    state = StatePaths.for_repo(repo)
    (found,) = JobRegistry(state.jobs_db).named(job)
    local_params = {p["name"]: p["default"] for p in found.settings["parameters"]}
    assert local_params == params
    ran = runner.invoke(app, ["--repo", str(repo), "run-job", job])
    assert ran.exit_code == 0, ran.stderr
    assert f"reads {PRODUCT} -> {PROD_TABLE} (prod)" in flat(ran.stdout)
    schema = f"acme_finance_reporting.dev_janedoe_featfinance_{commit[:8]}_share"
    rows = spark.table(f"{schema}.share").collect()  # type: ignore[attr-defined]
    assert [r[0] for r in rows] == ["Manhattan"]
