"""Model features of taxi trips, computed in Spark so training and inference share them.

The model sees only these columns (all doubles or strings, so MLflow's signature
accepts the same rows from pandas, Spark and JSON). Trips are split into training and
held-out rows by a hash of `trip_id`: a trip lands on the same side in every training
run, so the champion is never scored on rows the challenger trained on, and vice versa,
as long as both were trained on the same table.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as sf

from taximl.errors import InputTableError

KEY = "trip_id"
LABEL = "tip_amount"
NUMERIC_FEATURES: tuple[str, ...] = (
    "trip_distance",
    "passenger_count",
    "fare_amount",
    "tolls_amount",
    "duration_min",
    "pickup_hour",
    "pickup_dow",
)
CATEGORICAL_FEATURES: tuple[str, ...] = ("pickup_borough", "dropoff_borough", "payment_type")
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES
UNKNOWN = "unknown"

TRIP_COLUMNS: tuple[str, ...] = (
    KEY,
    "tpep_pickup_datetime",
    "tpep_dropoff_datetime",
    "pickup_borough",
    "dropoff_borough",
    "passenger_count",
    "trip_distance",
    "fare_amount",
    "tolls_amount",
    "payment_type",
)


def require_columns(df: DataFrame, table: str, columns: tuple[str, ...]) -> None:
    """Fail with one line naming the table and the columns it lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputTableError(
            f"table {table} lacks columns {', '.join(missing)}: expected NYC taxi trips"
        )


def trip_features(trips: DataFrame, *, table: str, with_label: bool) -> DataFrame:
    """`trip_id`, the model features and (with_label) `tip_amount` of each trip.

    With the label, trips without a tip amount are dropped: they can neither train
    nor evaluate a model.
    """
    require_columns(trips, table, TRIP_COLUMNS + ((LABEL,) if with_label else ()))
    pickup = sf.col("tpep_pickup_datetime").cast("timestamp")
    dropoff = sf.col("tpep_dropoff_datetime").cast("timestamp")
    derived: dict[str, Column] = {
        "trip_distance": sf.col("trip_distance").cast("double"),
        "passenger_count": sf.col("passenger_count").cast("double"),
        "fare_amount": sf.col("fare_amount").cast("double"),
        "tolls_amount": sf.col("tolls_amount").cast("double"),
        "duration_min": (sf.unix_timestamp(dropoff) - sf.unix_timestamp(pickup)).cast("double")
        / sf.lit(60.0),
        "pickup_hour": sf.hour(pickup).cast("double"),
        "pickup_dow": sf.dayofweek(pickup).cast("double"),
    }
    for name in CATEGORICAL_FEATURES:
        derived[name] = sf.coalesce(sf.col(name).cast("string"), sf.lit(UNKNOWN))
    columns = [sf.col(KEY), *(derived[name].alias(name) for name in FEATURES)]
    if with_label:
        columns.append(sf.col(LABEL).cast("double").alias(LABEL))
    out = trips.select(*columns)
    return out.where(sf.col(LABEL).isNotNull() & ~sf.isnan(LABEL)) if with_label else out


def heldout_flag(percent: int) -> Column:
    """True for the trips held out from training (about `percent` % of them)."""
    return sf.pmod(sf.xxhash64(sf.col(KEY).cast("string")), sf.lit(100)) < sf.lit(percent)


def split(features: DataFrame, heldout_percent: int) -> tuple[DataFrame, DataFrame]:
    """(training rows, held-out rows), disjoint and the same in every run."""
    flag = heldout_flag(heldout_percent)
    return features.where(~flag), features.where(flag)
