"""Flows run end to end on the shared local Spark session (real notebooks, real tables)."""

import json
import shutil
from pathlib import Path

import pytest

from meshops import context, discover, identity, naming, plan
from meshops.engine import flowrun, session
from meshops.engine.runs import RunStore
from meshops.state import StatePaths
from meshops.testing.mesh import FlowDef, commit_all, write_flow

pytestmark = [pytest.mark.spark, pytest.mark.integration]

NOTEBOOKS = Path(__file__).parent / "notebooks"


@pytest.fixture
def repo(mesh_repo: Path, spark: object) -> Path:
    folder = write_flow(
        mesh_repo,
        FlowDef(name="demo", tasks={"write": (), "read": ("write",), "names": (), "broken": ()}),
    )
    for notebook in NOTEBOOKS.glob("*.py"):
        shutil.copy(notebook, folder / notebook.name)
    # kept here, not as a file: a notebook with a syntax error would fail the linters
    (folder / "broken.py").write_text(
        "# Databricks notebook source\nok = 1\n\n# COMMAND ----------\n\nif ok\n    pass\n"
    )
    (folder / "deployment.yml").write_text(
        """tasks:
  - task_key: write
  - task_key: read
    depends_on: [{task_key: write}]
parameters: [{name: rows, default: "5"}]
"""
    )
    session.register_catalogs(spark, ["samples"])  # type: ignore[arg-type]
    spark.sql("CREATE SCHEMA IF NOT EXISTS samples.nyctaxi")  # type: ignore[attr-defined]
    spark.range(3).write.mode("overwrite").saveAsTable("samples.nyctaxi.trips")  # type: ignore[attr-defined]
    commit_all(mesh_repo, "demo flow")
    return mesh_repo


def run(repo: Path, **options: object) -> flowrun.RunResult:
    ctx = context.detect(repo, env="local", environ={})
    mesh = discover.scan(repo)
    flow = mesh.find(f"{FlowDef(name='demo').rel}")
    return flowrun.run_flow(ctx, mesh, flow, flowrun.RunOptions(progress=False, **options))  # type: ignore[arg-type]


def test_tables_land_under_the_names_the_workspace_would_use(repo: Path, spark: object) -> None:
    result = run(repo)
    ctx = context.detect(repo, env="local", environ={})
    schema = naming.names(identity.of(ctx), repo / FlowDef(name="demo").rel / "write.py").schema
    assert schema == f"acme_transport_taxinyc.local_janedoe_main_{ctx.commit[:8]}_demo"
    assert result.ok
    assert result.tables() == {f"{schema}.numbers": 5, f"{schema}.total": 1}
    assert spark.table(f"{schema}.total").collect()[0][0] == 10  # type: ignore[attr-defined]
    assert [(t.key, t.status) for t in result.record.tasks] == [
        ("write", "SUCCESS"),
        ("read", "SUCCESS"),
    ]
    log = Path(result.record.tasks[0].log).read_text()
    assert "wrote 5" in log
    stored = RunStore(StatePaths.for_repo(repo).runs_db).get(result.record.run_id)
    assert stored is not None and stored.status == "SUCCESS"
    assert stored.tasks[1].tables == {f"{schema}.total": 1}


def test_parameters_override_defaults(repo: Path) -> None:
    result = run(repo, parameters={"rows": "7"})
    assert not result.ok  # read asserts 5 rows came through task values
    assert next(iter(result.tables().values())) == 7
    read = result.record.tasks[1]
    assert read.status == "FAILED"
    assert read.error == f"{FlowDef(name='demo').rel}/read.py:9: AssertionError"


def test_a_failing_task_skips_dependents_and_fails_the_run(repo: Path) -> None:
    spec = repo / FlowDef(name="demo").rel / "deployment.yml"
    spec.write_text(
        "tasks:\n  - task_key: broken\n  - task_key: read\n    depends_on: [{task_key: broken}]\n"
        "  - task_key: names\n"
    )
    result = run(repo)
    statuses = {t.key: t.status for t in result.record.tasks}
    assert statuses == {"broken": "FAILED", "read": "UPSTREAM_FAILED", "names": "SUCCESS"}
    assert result.record.status == "FAILED"
    broken = result.record.tasks[0]
    assert broken.error == f"{FlowDef(name='demo').rel}/broken.py:6: SyntaxError: expected ':'"


def test_brickops_names_inside_a_notebook_equal_meshops_names(repo: Path) -> None:
    spec = repo / FlowDef(name="demo").rel / "deployment.yml"
    spec.write_text("tasks:\n  - task_key: names\n")
    ctx = context.detect(repo, env="dev", environ={})
    mesh = discover.scan(repo)
    flow = mesh.flows[0]
    result = flowrun.run_flow(ctx, mesh, flow, flowrun.RunOptions(progress=False))
    assert result.ok
    names = naming.names(identity.of(ctx), repo / flow.rel / "names.py")
    assert result.task_values[("names", "names")] == [names.catalog, names.schema]
    assert result.record.tasks[0].result == names.catalog
    assert names.schema.startswith("acme_transport_taxinyc.dev_janedoe_main_")


def test_mlflow_runs_land_in_the_state_dir(repo: Path) -> None:
    folder = repo / FlowDef(name="demo").rel
    (folder / "deployment.yml").write_text("tasks:\n  - task_key: mlflow_run\n")
    result = run(repo)
    assert result.ok
    state = StatePaths.for_repo(repo)
    uri = result.task_values[("mlflow_run", "artifact_uri")]
    assert uri.removeprefix("file://").startswith(str(state.mlflow_artifacts))
    assert state.mlflow_db.is_file()
    assert not (folder / "mlruns").exists()


def exported(path: Path, *cells: str) -> Path:
    """A notebook as the workspace exports it to .ipynb (Python, one code cell per text)."""
    doc = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "outputs": [], "source": cell} for cell in cells
        ],
        "metadata": {"application/vnd.databricks.v1+notebook": {"language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 0,
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_flow_whose_only_notebook_is_an_ipynb_validates_plans_and_runs(
    mesh_repo: Path, spark: object
) -> None:
    flow_def = FlowDef(name="exported", tasks={"report": ()})
    folder = write_flow(mesh_repo, flow_def)
    (folder / "report.py").unlink()
    exported(
        folder / "report.ipynb",
        "from brickops.datamesh.naming import catname_from_path, dbname, tablename\n"
        "catalog = catname_from_path()\n"
        "spark.sql(f\"CREATE SCHEMA IF NOT EXISTS {dbname(db='exported', cat=catalog)}\")",
        "%sql\nSELECT 1 AS one",
        # dbutils.notebook.run finds the exported helper.ipynb by its workspace name
        "n = int(dbutils.notebook.run('helper', 60, {'n': '4'}))\n"
        "spark.range(n).write.mode('overwrite').saveAsTable("
        "tablename(tbl='counted', db='exported', cat=catalog))\n"
        "dbutils.jobs.taskValues.set('n', n)",
    )
    exported(folder / "helper.ipynb", "dbutils.notebook.exit(str(int(dbutils.widgets.get('n'))))")
    commit_all(mesh_repo, "exported flow")

    mesh = discover.scan(mesh_repo)
    assert mesh.problems == ()
    flow = mesh.find(flow_def.rel)
    # validates and plans: the Jobs path has no extension, as for a .py notebook
    dev = context.detect(mesh_repo, env="dev", environ={})
    [job] = plan.build(identity.of(dev), mesh, [flow])
    assert [t["notebook_task"]["notebook_path"] for t in job.payload["tasks"]] == [
        f"{flow_def.rel}/report"
    ]
    # runs
    ctx = context.detect(mesh_repo, env="local", environ={})
    result = flowrun.run_flow(ctx, mesh, flow, flowrun.RunOptions(progress=False))
    assert result.ok, [t.error for t in result.record.tasks]
    assert result.task_values[("report", "n")] == 4
    schema = naming.names(identity.of(ctx), folder / "report.ipynb").schema
    assert result.tables() == {f"{schema}.counted": 4}


def test_notebook_run_of_a_missing_notebook_names_both_suffixes(repo: Path) -> None:
    folder = repo / FlowDef(name="demo").rel
    (folder / "deployment.yml").write_text("tasks:\n  - task_key: caller\n")
    (folder / "caller.py").write_text("dbutils.notebook.run('./nothing', 60)\n")
    result = run(repo)
    assert not result.ok
    error = result.record.tasks[0].error
    assert "dbutils.notebook.run('./nothing'): no notebook at " in error
    assert error.endswith(f"{folder.resolve()}/nothing(.py|.ipynb)")


def test_a_tasks_use_catalog_and_settings_do_not_leak_into_the_next_task(repo: Path) -> None:
    folder = repo / FlowDef(name="demo").rel
    (folder / "write.py").write_text(
        "# Databricks notebook source\n"
        "spark.sql('USE CATALOG samples')\n"
        "spark.sql('USE SCHEMA nyctaxi')\n"
        "spark.conf.set('spark.sql.shuffle.partitions', '7')\n"
        "spark.conf.set('spark.meshops.test.flag', 'true')\n"
        "assert spark.table('trips').count() == 3\n"
    )
    (folder / "read.py").write_text(
        "# Databricks notebook source\n"
        "dbutils.notebook.exit(' '.join([spark.catalog.currentCatalog(), "
        "spark.catalog.currentDatabase(), spark.conf.get('spark.sql.shuffle.partitions'), "
        "spark.conf.get('spark.meshops.test.flag', 'unset')]))\n"
    )
    commit_all(repo, "use catalog in one task")
    result = run(repo)
    assert result.ok, result.record.tasks
    assert result.record.tasks[1].result == "spark_catalog default 4 unset"
