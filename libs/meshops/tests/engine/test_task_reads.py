"""The tables each task reads are recorded in its run record (lineage), beside what it wrote."""

from pathlib import Path

import pytest

from meshops import context, discover, lineagegraph, portal
from meshops.engine import flowrun, session
from meshops.engine.runs import RunStore
from meshops.state import StatePaths
from meshops.testing.mesh import FlowDef, commit_all, write_flow

pytestmark = [pytest.mark.spark, pytest.mark.integration]

FLOW = FlowDef(name="lineagedemo", tasks={"make": (), "use": ("make",)})

MAKE = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='lineagedemo', cat=catalog)}")
trips = spark.table("samples.nyctaxi.trips")
trips.write.mode("overwrite").saveAsTable(tablename(tbl="copy", db="lineagedemo", cat=catalog))
side = tablename(tbl="side", db="lineagedemo", cat=catalog)
spark.range(2).write.mode("overwrite").saveAsTable(side)
"""

USE = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, tablename

catalog = catname_from_path()
copy = tablename(tbl="copy", db="lineagedemo", cat=catalog)
side = tablename(tbl="side", db="lineagedemo", cat=catalog)
out = tablename(tbl="joined", db="lineagedemo", cat=catalog)
joined = f"SELECT c.id FROM {copy} c JOIN {side} s ON c.id = s.id"
spark.sql(f"CREATE OR REPLACE TABLE {out} AS {joined}")
spark.sql(f"MERGE INTO {out} t USING {side} s ON t.id = s.id WHEN NOT MATCHED THEN INSERT *")
assert spark.sql(f"SELECT * FROM {copy} VERSION AS OF 0").count() == 3
"""


@pytest.fixture
def repo(mesh_repo: Path, spark: object) -> Path:
    folder = write_flow(mesh_repo, FLOW)
    (folder / "make.py").write_text(MAKE)
    (folder / "use.py").write_text(USE)
    session.register_catalogs(spark, ["samples"])  # type: ignore[arg-type]
    spark.sql("CREATE SCHEMA IF NOT EXISTS samples.nyctaxi")  # type: ignore[attr-defined]
    spark.range(3).write.mode("overwrite").saveAsTable("samples.nyctaxi.trips")  # type: ignore[attr-defined]
    commit_all(mesh_repo, "lineage flow")
    return mesh_repo


def test_reads_are_recorded_per_task_and_writes_are_not_reads(repo: Path) -> None:
    ctx = context.detect(repo, env="local", environ={})
    mesh = discover.scan(repo)
    result = flowrun.run_flow(
        ctx, mesh, mesh.find(FLOW.rel), flowrun.RunOptions(progress=False, max_workers=1)
    )
    assert result.ok, [t.error for t in result.record.tasks]
    schema = result.names.schema
    make, use = result.record.tasks
    assert make.reads == ["samples.nyctaxi.trips"]
    assert set(make.tables) == {f"{schema}.copy", f"{schema}.side"}
    # the CTAS target and the MERGE target are writes; a MERGE source and time travel are reads
    assert use.reads == [f"{schema}.copy", f"{schema}.side"]
    assert set(use.tables) == {f"{schema}.joined"}
    state = StatePaths.for_repo(repo)
    stored = RunStore(state.runs_db).get(result.record.run_id)
    assert stored is not None and [t.reads for t in stored.tasks] == [make.reads, use.reads]

    # the record is what lineage and the portal show: tables by their deployment-free name
    graph = lineagegraph.local(ctx, mesh, state, FLOW.rel)
    edges = {(e.source, e.target, e.kind): e.evidence for e in graph.edges}
    logical = "acme_transport_taxinyc.lineagedemo"
    assert edges[("samples.nyctaxi.trips", FLOW.rel, "reads")] == ("run",)
    assert edges[(FLOW.rel, f"{logical}.joined", "writes")] == ("run",)
    assert f"{schema}.joined" in graph.tables[f"{logical}.joined"].seen_as
    site = portal.build(ctx, mesh, state, repo.parent / "site")
    runs = (site.folder / "runs.html").read_text()
    assert result.record.run_id in runs and f"<code>{schema}.copy</code> (3)" in runs
