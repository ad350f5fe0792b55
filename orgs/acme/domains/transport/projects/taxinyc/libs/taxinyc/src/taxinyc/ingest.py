"""Landing files -> a clean trips table (the ingest flow's own `trips`; taxigen's sample table).

Cleaning rules, applied in this order:

1. Columns are cast to `TRIPS_SCHEMA` (extra landing columns are dropped; a missing
   column is an error that names it).
2. Rows that cannot be a paid trip are dropped: no trip id or timestamps, dropoff not
   after pickup, distance not above zero, fare not above zero (voids and refunds),
   negative tip or tolls, total not above zero.
3. Unknown places stay in the data: a null or blank borough becomes `Unknown` (as the
   TLC's own zone table calls it), so revenue is never lost from the totals; a null
   payment type becomes `unknown`. A null passenger count stays null (not recorded).
4. A trip delivered twice (same `trip_id`) is kept once.

The clean trips are upserted into the table by `trip_id` (`merge_trips_sql`): a trip
delivered again in a later file replaces its earlier version only if a value changed, so
loading the same files again changes no row (the MERGE inserts and updates nothing).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf
from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

UNKNOWN_BOROUGH = "Unknown"
UNKNOWN_PAYMENT = "unknown"

TRIPS_SCHEMA = StructType(
    [
        StructField("trip_id", LongType()),
        StructField("tpep_pickup_datetime", TimestampType()),
        StructField("tpep_dropoff_datetime", TimestampType()),
        StructField("pickup_borough", StringType()),
        StructField("dropoff_borough", StringType()),
        StructField("passenger_count", IntegerType()),
        StructField("trip_distance", DoubleType()),
        StructField("fare_amount", DoubleType()),
        StructField("tip_amount", DoubleType()),
        StructField("tolls_amount", DoubleType()),
        StructField("total_amount", DoubleType()),
        StructField("payment_type", StringType()),
    ]
)
"""Schema of the clean trips table.

Spark reports every column nullable (as any saved table does); after cleaning only
`passenger_count` holds nulls.
"""


def _label(column: str, unknown: str) -> Column:
    value = sf.trim(sf.col(column))
    return sf.when(value.isNull() | (value == ""), sf.lit(unknown)).otherwise(value)


def clean_trips(raw: DataFrame) -> DataFrame:
    """Typed, valid, de-duplicated trips from raw landing data (rules in the module doc)."""
    missing = [f.name for f in TRIPS_SCHEMA.fields if f.name not in raw.columns]
    if missing:
        raise ValueError(
            f"landing data lacks column(s) {', '.join(missing)}; "
            "expected the columns of taxinyc.ingest.TRIPS_SCHEMA"
        )
    typed = raw.select(
        *[sf.col(f.name).cast(f.dataType).alias(f.name) for f in TRIPS_SCHEMA.fields]
    )
    c = sf.col
    valid = typed.filter(
        c("trip_id").isNotNull()
        & c("tpep_pickup_datetime").isNotNull()
        & c("tpep_dropoff_datetime").isNotNull()
        & (c("tpep_dropoff_datetime") > c("tpep_pickup_datetime"))
        & (c("trip_distance") > 0)
        & (c("fare_amount") > 0)
        & (c("tip_amount") >= 0)
        & (c("tolls_amount") >= 0)
        & (c("total_amount") > 0)
    )
    labelled = valid.withColumns(
        {
            "pickup_borough": _label("pickup_borough", UNKNOWN_BOROUGH),
            "dropoff_borough": _label("dropoff_borough", UNKNOWN_BOROUGH),
            "payment_type": sf.lower(_label("payment_type", UNKNOWN_PAYMENT)),
        }
    )
    return labelled.dropDuplicates(["trip_id"]).select(*TRIPS_SCHEMA.fieldNames())


def merge_trips_sql(target: str, source: str) -> str:
    """MERGE INTO `target` from `source` (a view of clean trips) by `trip_id`.

    New trips are inserted; a known trip is updated only when one of its columns differs
    (null-safe), so a rerun over the same landing files inserts and updates nothing.
    """
    changed = " OR ".join(
        f"NOT (t.{name} <=> s.{name})" for name in TRIPS_SCHEMA.fieldNames() if name != "trip_id"
    )
    return (
        f"MERGE INTO {target} AS t USING {source} AS s ON t.trip_id = s.trip_id "
        f"WHEN MATCHED AND ({changed}) THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT *"
    )
