"""The ingest flow's logic on generated landing files: read parquet, clean, compare.

The landing files are made by tools/taxigen.py, the same generator that feeds local
runs, so the test sees the real file layout and types (int64, timestamps without
time zone) and the generator's dirty rows.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession

from dfcompare import assert_same
from taxinyc.ingest import TRIPS_SCHEMA, UNKNOWN_BOROUGH, clean_trips

pytestmark = pytest.mark.spark

ROWS = 800


def load_taxigen() -> ModuleType:
    root = next(p for p in Path(__file__).resolve().parents if (p / "tools/taxigen.py").is_file())
    spec = importlib.util.spec_from_file_location("taxigen", root / "tools/taxigen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    taxigen = load_taxigen()
    # small files, so the flow reads a folder of several parts as in production
    return taxigen.write(
        tmp_path_factory.mktemp("landing") / "trips", rows=ROWS, seed=4, chunk_rows=1
    )


def expected_trips(spark: SparkSession, landing: Path) -> DataFrame:
    """The cleaning rules applied with pyarrow: an independent second implementation."""
    raw = pq.read_table(landing)
    conditions = [
        pc.greater(raw["fare_amount"], 0),
        pc.greater(raw["trip_distance"], 0),
        pc.greater_equal(raw["tip_amount"], 0),
        pc.greater_equal(raw["tolls_amount"], 0),
        pc.greater(raw["total_amount"], 0),
        pc.greater(raw["tpep_dropoff_datetime"], raw["tpep_pickup_datetime"]),
    ]
    rows = raw.filter(functools.reduce(pc.and_, conditions)).to_pylist()
    for row in rows:
        row["pickup_borough"] = row["pickup_borough"] or UNKNOWN_BOROUGH
        row["dropoff_borough"] = row["dropoff_borough"] or UNKNOWN_BOROUGH
    names = TRIPS_SCHEMA.fieldNames()
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], TRIPS_SCHEMA)


def test_landing_has_dirty_rows_to_clean(landing: Path) -> None:
    raw = pq.read_table(landing)
    assert raw.num_rows == ROWS
    assert len(list(landing.glob("part-*.parquet"))) == 1  # BLOCK_ROWS > ROWS: one block
    assert pc.sum(pc.less(raw["fare_amount"], 0)).as_py() > 0
    assert pc.sum(pc.equal(raw["trip_distance"], 0)).as_py() > 0
    assert raw["pickup_borough"].null_count > 0


def test_load_trips_cleans_the_landing_files(spark: SparkSession, landing: Path) -> None:
    raw = spark.read.parquet(str(landing))  # what load_trips reads from the landing Volume
    trips = clean_trips(raw)
    assert trips.schema == TRIPS_SCHEMA
    expected = expected_trips(spark, landing)
    assert 0.97 * ROWS < expected.count() < ROWS
    assert_same(trips, expected, keys=["trip_id"])
    boroughs = {r["pickup_borough"] for r in trips.select("pickup_borough").distinct().collect()}
    assert UNKNOWN_BOROUGH in boroughs
    assert None not in boroughs


def test_load_trips_is_idempotent_on_redelivered_files(spark: SparkSession, landing: Path) -> None:
    once = spark.read.parquet(str(landing))
    twice = once.unionByName(once)  # the same files landed again
    assert_same(clean_trips(twice), clean_trips(once), keys=["trip_id"])
