"""The ingest flow run twice on the same landing files: the second run changes nothing.

load_trips upserts the clean trips into the flow's own `trips` table (brickops names it in
the flow's catalog and schema) with MERGE INTO by `trip_id`; loading the same files again
must leave rows and table content as they were, and the table's history must show a MERGE
that inserted and updated no row. The shared sample `samples.nyctaxi.trips`, which flows
only read, is left exactly as tools/taxigen.py loaded it (a dev run used to overwrite it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from dfcompare import assert_same
from meshops import context, discover
from meshops.engine import flowrun
from meshops.state import StatePaths
from taxinyc.ingest import clean_trips

pytestmark = [pytest.mark.spark, pytest.mark.integration]

INGEST = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/ingest"
SAMPLE = "samples.nyctaxi.trips"


def load_taxigen(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("taxigen", root / "tools/taxigen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot(spark: SparkSession, table: str) -> pd.DataFrame:
    return spark.table(table).toPandas().sort_values("trip_id").reset_index(drop=True)


def version(spark: SparkSession, table: str) -> int:
    row = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()
    assert row is not None
    return int(row["version"])


def drop_ingest_tables(spark: SparkSession, catalog: str, prefix: str) -> None:
    """Start from no trips table of this deployment (other tests of the process leave one)."""
    for row in spark.sql(f"SHOW SCHEMAS IN {catalog} LIKE '{prefix}*_ingest'").collect():
        spark.sql(f"DROP TABLE IF EXISTS {catalog}.{row[0]}.trips")


@pytest.fixture(scope="module")
def reruns(meshops_repo_root: Path, spark: SparkSession) -> dict[str, object]:
    root = meshops_repo_root
    taxigen = load_taxigen(root)
    landing = StatePaths.for_repo(root).volumes / taxigen.LANDING_VOLUME
    # the same landing files as the mesh test (test_mesh_run), so they agree on the table
    taxigen.write(landing, rows=400, seed=7)
    ctx = context.detect(root, env="local", overrides={"user": "ci@acme.example", "branch": "it"})
    mesh = discover.scan(root)
    # the session with the mesh's catalogs (samples among them), as a run sees it
    flowrun.spark_for(ctx, mesh)
    drop_ingest_tables(spark, "acme_transport_taxinyc", "local_ci_it_")
    # the shared sample as the tool loads it (test set-up, not a flow: it may write samples)
    sample_rows = taxigen.load_table(spark, landing)
    sample_before = (snapshot(spark, SAMPLE), version(spark, SAMPLE))
    options = flowrun.RunOptions(progress=False)
    first = flowrun.run_flow(ctx, mesh, mesh.find(INGEST), options)
    trips = f"{first.names.schema}.trips"
    after_first = snapshot(spark, trips)
    second = flowrun.run_flow(ctx, mesh, mesh.find(INGEST), options)
    return {
        "first": first,
        "second": second,
        "trips": trips,
        "after_first": after_first,
        "after_second": snapshot(spark, trips),
        "landing": landing,
        "sample_rows": sample_rows,
        "sample_before": sample_before,
        "sample_after": (snapshot(spark, SAMPLE), version(spark, SAMPLE)),
    }


def test_both_runs_succeed_with_the_clean_trips(
    reruns: dict[str, object], spark: SparkSession
) -> None:
    first, second = reruns["first"], reruns["second"]
    assert isinstance(first, flowrun.RunResult) and isinstance(second, flowrun.RunResult)
    assert (first.record.status, second.record.status) == ("SUCCESS", "SUCCESS")
    expected = clean_trips(spark.read.parquet(str(reruns["landing"])))
    assert 300 < expected.count() < 400  # the generator's dirty rows were dropped
    trips = reruns["trips"]
    assert isinstance(trips, str)
    assert trips.startswith("acme_transport_taxinyc.local_ci_it_")
    assert trips.endswith("_ingest.trips")
    assert first.tables() == second.tables() == {trips: expected.count()}
    assert_same(spark.table(trips), expected, keys=["trip_id"])


def test_local_runs_leave_the_shared_sample_table_unchanged(reruns: dict[str, object]) -> None:
    before, after = reruns["sample_before"], reruns["sample_after"]
    assert isinstance(before, tuple) and isinstance(after, tuple)
    (rows, version_before), (rows_after, version_after) = before, after
    assert len(rows) == reruns["sample_rows"] == 400  # the tool loads every generated trip
    assert len(rows_after) == len(rows)
    assert version_after == version_before
    pd.testing.assert_frame_equal(rows_after, rows)


def test_rerun_changes_no_row(reruns: dict[str, object]) -> None:
    after_first, after_second = reruns["after_first"], reruns["after_second"]
    assert isinstance(after_first, pd.DataFrame) and isinstance(after_second, pd.DataFrame)
    assert len(after_second) == len(after_first)
    assert after_second["trip_id"].is_unique
    pd.testing.assert_frame_equal(after_second, after_first)


def test_history_shows_a_merge_that_inserted_nothing_on_the_rerun(
    reruns: dict[str, object], spark: SparkSession
) -> None:
    history = spark.sql(f"DESCRIBE HISTORY {reruns['trips']}").orderBy("version").collect()
    assert [h["operation"] for h in history] == ["CREATE TABLE", "MERGE", "MERGE"]
    load, rerun = history[1]["operationMetrics"], history[2]["operationMetrics"]
    rows = len(reruns["after_first"])  # type: ignore[arg-type]
    assert int(load["numTargetRowsInserted"]) == rows
    assert int(load["numTargetRowsUpdated"]) == 0
    assert int(rerun["numSourceRows"]) == rows
    assert int(rerun["numTargetRowsInserted"]) == 0
    assert int(rerun["numTargetRowsUpdated"]) == 0
    assert int(rerun["numTargetRowsDeleted"]) == 0
