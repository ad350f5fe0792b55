"""The revenue flow's published Delta tables: liquid clustering and change data feed.

Finance reads `revenue_per_inhabitant` (and reconciles with `revenue_by_borough`): the
tables are clustered on the columns readers filter by and keep a change data feed, so
consumers can read what a run changed with `table_changes`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from dfcompare import assert_same
from meshops import context, discover
from meshops.engine import flowrun
from meshops.state import StatePaths

pytestmark = [pytest.mark.spark, pytest.mark.integration]

TAXI = "orgs/acme/domains/transport/projects/taxinyc/flows/prep"
CLUSTERING = {
    "revenue_by_borough": ["borough"],
    "revenue_by_tripmonth": ["trip_month"],
    "borough_population": ["borough"],
    "revenue_per_inhabitant": ["borough"],
}


@pytest.fixture(scope="module")
def revenue(meshops_repo_root: Path, spark: SparkSession) -> flowrun.RunResult:
    root = meshops_repo_root
    landing = StatePaths.for_repo(root).volumes / "samples/nyctaxi/landing/trips"
    spec = importlib.util.spec_from_file_location("taxigen", root / "tools/taxigen.py")
    assert spec is not None and spec.loader is not None
    taxigen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(taxigen)
    taxigen.write(landing, rows=400, seed=7)  # the landing files of the mesh test
    ctx = context.detect(root, env="local", overrides={"user": "ci@acme.example", "branch": "cdf"})
    mesh = discover.scan(root)
    # trips are upserted: start from none, whatever other tests of this process left there
    flowrun.spark_for(ctx, mesh).sql("DROP TABLE IF EXISTS samples.nyctaxi.trips")
    options = flowrun.RunOptions(progress=False)
    ingest = flowrun.run_flow(ctx, mesh, mesh.find(f"{TAXI}/ingest"), options)
    assert ingest.ok
    result = flowrun.run_flow(ctx, mesh, mesh.find(f"{TAXI}/revenue"), options)
    assert result.ok, result.record
    return result


@pytest.mark.parametrize("table", sorted(CLUSTERING))
def test_published_tables_are_clustered_delta_tables_with_change_data_feed(
    revenue: flowrun.RunResult, spark: SparkSession, table: str
) -> None:
    detail = spark.sql(f"DESCRIBE DETAIL {revenue.names.schema}.{table}").first()
    assert detail is not None
    assert detail["format"] == "delta"
    assert detail["clusteringColumns"] == CLUSTERING[table]
    assert detail["partitionColumns"] == []
    assert detail["properties"].get("delta.enableChangeDataFeed") == "true"


def test_table_changes_of_revenue_per_inhabitant_hold_the_published_rows(
    revenue: flowrun.RunResult, spark: SparkSession
) -> None:
    name = f"{revenue.names.schema}.revenue_per_inhabitant"
    version = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()
    assert version is not None
    changes = spark.sql(f"SELECT * FROM table_changes('{name}', {version['version']})")
    assert changes.count() > 0
    assert {r["_change_type"] for r in changes.select("_change_type").distinct().collect()} == {
        "insert"
    }
    published = spark.table(name)
    assert published.count() == 5  # the five boroughs with residents
    assert_same(changes.select(*published.columns), published, keys=["borough"], rel_tol=1e-12)
