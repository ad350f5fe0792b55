"""The ingest flow run twice on the same landing files: the second run changes nothing.

load_trips upserts the clean trips into `samples.nyctaxi.trips` with MERGE INTO by
`trip_id`; loading the same files again must leave rows and table content as they were,
and the table's history must show a MERGE that inserted and updated no row.
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
TRIPS = "samples.nyctaxi.trips"


def load_taxigen(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("taxigen", root / "tools/taxigen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot(spark: SparkSession) -> pd.DataFrame:
    return spark.table(TRIPS).toPandas().sort_values("trip_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def reruns(meshops_repo_root: Path, spark: SparkSession) -> dict[str, object]:
    root = meshops_repo_root
    landing = StatePaths.for_repo(root).volumes / "samples/nyctaxi/landing/trips"
    # the same landing files as the mesh test (test_mesh_run), so they agree on the table
    load_taxigen(root).write(landing, rows=400, seed=7)
    ctx = context.detect(root, env="local", overrides={"user": "ci@acme.example", "branch": "it"})
    mesh = discover.scan(root)
    # the session with the mesh's catalogs (samples among them), as a run sees it
    flowrun.spark_for(ctx, mesh).sql(f"DROP TABLE IF EXISTS {TRIPS}")  # start from no table
    options = flowrun.RunOptions(progress=False)
    first = flowrun.run_flow(ctx, mesh, mesh.find(INGEST), options)
    after_first = snapshot(spark)
    second = flowrun.run_flow(ctx, mesh, mesh.find(INGEST), options)
    return {
        "first": first,
        "second": second,
        "after_first": after_first,
        "after_second": snapshot(spark),
        "landing": landing,
    }


def test_both_runs_succeed_with_the_clean_trips(
    reruns: dict[str, object], spark: SparkSession
) -> None:
    first, second = reruns["first"], reruns["second"]
    assert isinstance(first, flowrun.RunResult) and isinstance(second, flowrun.RunResult)
    assert (first.record.status, second.record.status) == ("SUCCESS", "SUCCESS")
    expected = clean_trips(spark.read.parquet(str(reruns["landing"])))
    assert 300 < expected.count() < 400  # the generator's dirty rows were dropped
    assert first.tables() == second.tables() == {TRIPS: expected.count()}
    assert_same(spark.table(TRIPS), expected, keys=["trip_id"])


def test_rerun_changes_no_row(reruns: dict[str, object]) -> None:
    after_first, after_second = reruns["after_first"], reruns["after_second"]
    assert isinstance(after_first, pd.DataFrame) and isinstance(after_second, pd.DataFrame)
    assert len(after_second) == len(after_first)
    assert after_second["trip_id"].is_unique
    pd.testing.assert_frame_equal(after_second, after_first)


def test_history_shows_a_merge_that_inserted_nothing_on_the_rerun(
    reruns: dict[str, object], spark: SparkSession
) -> None:
    history = spark.sql(f"DESCRIBE HISTORY {TRIPS}").orderBy("version").collect()
    assert [h["operation"] for h in history] == ["CREATE TABLE", "MERGE", "MERGE"]
    load, rerun = history[1]["operationMetrics"], history[2]["operationMetrics"]
    rows = len(reruns["after_first"])  # type: ignore[arg-type]
    assert int(load["numTargetRowsInserted"]) == rows
    assert int(load["numTargetRowsUpdated"]) == 0
    assert int(rerun["numSourceRows"]) == rows
    assert int(rerun["numTargetRowsInserted"]) == 0
    assert int(rerun["numTargetRowsUpdated"]) == 0
    assert int(rerun["numTargetRowsDeleted"]) == 0
