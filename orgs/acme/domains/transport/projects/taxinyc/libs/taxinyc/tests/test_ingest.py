"""clean_trips: types, dropped rows, labels for unknown places, de-duplication; the MERGE."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from taxinyc.ingest import TRIPS_SCHEMA, clean_trips, merge_trips_sql

pytestmark = pytest.mark.spark

# the landing files' types (pyarrow writes int64 and timestamps without time zone)
RAW = (
    "trip_id bigint, tpep_pickup_datetime timestamp_ntz, tpep_dropoff_datetime timestamp_ntz, "
    "pickup_borough string, dropoff_borough string, passenger_count bigint, "
    "trip_distance double, fare_amount double, tip_amount double, tolls_amount double, "
    "total_amount double, payment_type string, vendor string"
)
T0 = datetime(2024, 1, 5, 8, 0)
T1 = datetime(2024, 1, 5, 8, 12)


def raw_row(trip_id: int, **changes: object) -> tuple[object, ...]:
    row: dict[str, object] = {
        "trip_id": trip_id,
        "tpep_pickup_datetime": T0,
        "tpep_dropoff_datetime": T1,
        "pickup_borough": "Manhattan",
        "dropoff_borough": "Manhattan",
        "passenger_count": 1,
        "trip_distance": 1.5,
        "fare_amount": 10.0,
        "tip_amount": 2.0,
        "tolls_amount": 0.0,
        "total_amount": 16.0,
        "payment_type": "card",
        "vendor": "extra column, dropped",
    }
    row.update(changes)
    return tuple(row.values())


def test_clean_trips_keeps_valid_rows_typed_and_labelled(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [
            raw_row(1),
            raw_row(1),  # delivered twice
            raw_row(2, pickup_borough=None, dropoff_borough=" Queens "),
            raw_row(3, passenger_count=None, payment_type="CARD", dropoff_borough=""),
            raw_row(4, fare_amount=-10.0, tip_amount=-2.0, total_amount=-16.0),  # void
            raw_row(5, trip_distance=0.0),
            raw_row(6, tpep_dropoff_datetime=T0),  # never moved in time
            raw_row(7, tip_amount=-1.0),
            raw_row(8, total_amount=0.0),
            raw_row(9, payment_type=None),
        ],
        RAW,
    )
    clean = clean_trips(raw)

    def expected(
        trip_id: int, pickup: str, dropoff: str, passengers: int | None, payment: str
    ) -> tuple[object, ...]:
        return (trip_id, T0, T1, pickup, dropoff, passengers, 1.5, 10.0, 2.0, 0.0, 16.0, payment)

    assertSchemaEqual(clean.schema, TRIPS_SCHEMA, ignoreNullable=False)
    assertDataFrameEqual(
        clean,
        spark.createDataFrame(
            [
                expected(1, "Manhattan", "Manhattan", 1, "card"),
                expected(2, "Unknown", "Queens", 1, "card"),
                expected(3, "Manhattan", "Unknown", None, "card"),
                expected(9, "Manhattan", "Manhattan", 1, "unknown"),
            ],
            TRIPS_SCHEMA,
        ),
    )


def test_clean_trips_names_missing_columns(spark: SparkSession) -> None:
    raw = spark.createDataFrame([raw_row(1)], RAW).drop("fare_amount", "payment_type")
    with pytest.raises(ValueError, match="lacks column\\(s\\) fare_amount, payment_type"):
        clean_trips(raw)


def test_merge_trips_sql_upserts_by_trip_id_and_skips_unchanged_trips(
    spark: SparkSession, tmp_path: Path
) -> None:
    table = f"delta.`{tmp_path / 'trips'}`"
    loaded = clean_trips(spark.createDataFrame([raw_row(1), raw_row(2), raw_row(3)], RAW))
    loaded.write.format("delta").save(str(tmp_path / "trips"))
    redelivered = clean_trips(
        spark.createDataFrame(
            [
                raw_row(1),  # unchanged
                raw_row(2, tip_amount=3.0, total_amount=17.0),  # corrected
                raw_row(3, passenger_count=None),  # a value became null
                raw_row(4),  # new
            ],
            RAW,
        )
    )
    redelivered.createOrReplaceTempView("redelivered_trips")
    metrics = spark.sql(merge_trips_sql(table, "redelivered_trips")).first()
    assert metrics is not None
    assert (metrics["num_inserted_rows"], metrics["num_updated_rows"]) == (1, 2)
    assertDataFrameEqual(spark.table(table), redelivered)

    again = spark.sql(merge_trips_sql(table, "redelivered_trips")).first()
    assert again is not None
    assert (again["num_affected_rows"], again["num_inserted_rows"]) == (0, 0)
    assertDataFrameEqual(spark.table(table), redelivered)
