"""One function per task of the `taximodel` flow: read tables, call the logic, write tables.

Notebooks compute names and parameters and call these; everything here takes fully
qualified table names and the registered model name, so tests run it on any catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType

from taximl import monitoring, validation
from taximl.errors import InputTableError
from taximl.features import FEATURES, LABEL, split, trip_features
from taximl.params import TrainParams
from taximl.promotion import Decision
from taximl.registry import CHAMPION, experiment_name, require_alias, version_uri
from taximl.training import PROFILE_ARTIFACT, TrainResult, train_and_register

PREDICTION = "prediction"
_NOT_FOUND = {
    "TABLE_OR_VIEW_NOT_FOUND",
    "SCHEMA_NOT_FOUND",
    "CATALOG_NOT_FOUND",
    "REQUIRES_SINGLE_PART_NAMESPACE",
}


def read_table(spark: SparkSession, name: str) -> DataFrame:
    """The table, or one line naming it when it does not exist."""
    try:
        df = spark.table(name)
        df.schema  # noqa: B018 - Spark Connect resolves lazily; make a missing table fail here
    except AnalysisException as exc:
        # getCondition() is Spark 4; Databricks runtimes on Spark 3.5 have getErrorClass()
        get = getattr(exc, "getCondition", None) or exc.getErrorClass
        condition = get() or ""
        if condition in _NOT_FOUND or condition.startswith(
            ("TABLE_OR_VIEW_NOT_FOUND", "SCHEMA_NOT")
        ):
            raise InputTableError(
                f"table {name} does not exist: run the task or flow that writes it first"
            ) from None
        raise
    return df


def to_pandas(df: DataFrame) -> pd.DataFrame:
    """Collect a (small) frame to the driver, typed as the pandas frame it is."""
    return cast(pd.DataFrame, df.toPandas())


def use_experiment(model_name: str) -> None:
    """Runs of a model go to its experiment (created on first use)."""
    mlflow.set_experiment(experiment_name(model_name))


def train_task(
    spark: SparkSession,
    *,
    trips_table: str,
    heldout_table: str,
    model_name: str,
    params: TrainParams,
    tags: Mapping[str, str],
) -> TrainResult:
    """Features of the trips, held-out rows saved as a table, a registered `challenger`."""
    features = trip_features(read_table(spark, trips_table), table=trips_table, with_label=True)
    train_df, heldout_df = split(features, params.heldout_percent)
    train = to_pandas(train_df)
    if train.empty:
        raise InputTableError(f"table {trips_table} has no trips with a {LABEL} to train on")
    heldout_df.write.mode("overwrite").saveAsTable(heldout_table)
    heldout = to_pandas(read_table(spark, heldout_table))
    if heldout.empty:
        raise InputTableError(
            f"table {trips_table} has no held-out trips ({params.heldout_percent}% of trip ids): "
            "add trips or raise heldout_percent"
        )
    use_experiment(model_name)
    result = train_and_register(
        train, heldout, params=params, model_name=model_name, tags=tags, source_table=trips_table
    )
    print(
        f"registered {model_name} v{result.version} as challenger: "
        f"held-out rmse {result.metrics['heldout_rmse']:.4f} on {len(heldout)} trips"
    )
    return result


VALIDATION_SCHEMA = StructType(
    [
        StructField("model_name", StringType()),
        StructField("challenger_version", StringType()),
        StructField("champion_version", StringType()),
        StructField("metric", StringType()),
        StructField("challenger_value", DoubleType()),
        StructField("champion_value", DoubleType()),
        StructField("relative_improvement", DoubleType()),
        StructField("margin", DoubleType()),
        StructField("promoted", BooleanType()),
        StructField("reason", StringType()),
        StructField("mlflow_run_id", StringType()),
    ]
)


def validate_task(
    spark: SparkSession,
    *,
    heldout_table: str,
    validation_table: str,
    model_name: str,
    margin: float,
    tags: Mapping[str, str],
) -> Decision:
    """Score challenger and champion, log the decision (run, table, output), then apply it."""
    heldout = to_pandas(read_table(spark, heldout_table))
    if heldout.empty:
        raise InputTableError(
            f"table {heldout_table} has no rows to validate on: run training first"
        )
    client = MlflowClient()
    decision = validation.validate(client, model_name, heldout, margin)
    use_experiment(model_name)
    run_id = validation.log_decision(decision, tags)
    row = (
        model_name,
        decision.challenger_version,
        decision.champion_version,
        decision.metric,
        decision.challenger_value,
        decision.champion_value,
        decision.relative_improvement,
        decision.margin,
        decision.promote,
        decision.reason,
        run_id,
    )
    table = spark.createDataFrame([row], VALIDATION_SCHEMA)
    table.withColumn("validated_at", sf.current_timestamp()).write.mode("append").saveAsTable(
        validation_table
    )
    print(decision.line())
    validation.apply(client, model_name, decision)
    return decision


@dataclass(frozen=True)
class Scored:
    """Which version scored how many trips."""

    version: str
    rows: int


def batch_inference_task(
    spark: SparkSession, *, trips_table: str, predictions_table: str, model_name: str
) -> Scored:
    """Score every trip with the champion; the version is resolved once and written per row."""
    champion = require_alias(MlflowClient(), model_name, CHAMPION, "run the validation task first")
    version = str(champion.version)
    features = trip_features(read_table(spark, trips_table), table=trips_table, with_label=False)
    if features.isEmpty():
        raise InputTableError(f"table {trips_table} has no trips to score")
    predict = mlflow.pyfunc.spark_udf(
        spark, version_uri(model_name, version), env_manager="local", result_type="double"
    )
    scored = features.select(
        "*",
        predict(sf.struct(*FEATURES)).alias(PREDICTION),
        sf.lit(model_name).alias("model_name"),
        sf.lit(version).alias("model_version"),
        sf.current_timestamp().alias("scored_at"),
    )
    scored.write.mode("overwrite").saveAsTable(predictions_table)
    rows = read_table(spark, predictions_table).count()
    print(f"scored {rows} trips of {trips_table} with {model_name} v{version}")
    return Scored(version=version, rows=rows)


MONITORING_SCHEMA = StructType(
    [
        StructField("model_name", StringType()),
        StructField("model_version", StringType()),
        StructField("kind", StringType()),
        StructField("name", StringType()),
        StructField("value", DoubleType()),
        StructField("level", StringType()),
        StructField("rows", LongType()),
    ]
)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def prediction_stats(predictions: DataFrame) -> dict[str, float]:
    """Distribution of the predictions: count, mean, spread and quantiles."""
    col = sf.col(PREDICTION)
    row = predictions.agg(
        sf.count(col).alias("count"),
        sf.mean(col).alias("mean"),
        sf.stddev(col).alias("stddev"),
        sf.min(col).alias("min"),
        sf.max(col).alias("max"),
        sf.percentile_approx(col, list(QUANTILES), 10_000).alias("q"),
    ).first()
    assert row is not None  # an aggregate always has one row
    stats = {
        k: float(row[k]) if row[k] is not None else float("nan")
        for k in ("count", "mean", "stddev", "min", "max")
    }
    for q, value in zip(QUANTILES, row["q"] or [None] * len(QUANTILES), strict=True):
        stats[f"p{round(q * 100):02d}"] = float(value) if value is not None else float("nan")
    return stats


def monitoring_task(
    spark: SparkSession, *, predictions_table: str, monitoring_table: str, model_name: str
) -> DataFrame:
    """Append the prediction distribution and per-feature PSI of each scored version."""
    predictions = read_table(spark, predictions_table)
    versions = sorted(
        r["model_version"] for r in predictions.select("model_version").distinct().collect()
    )
    if not versions:
        raise InputTableError(
            f"table {predictions_table} has no predictions to monitor: run batch_inference first"
        )
    client = MlflowClient()
    rows: list[tuple[str, str, str, str, float, str | None, int]] = []
    for version in versions:
        scored = predictions.where(sf.col("model_version") == version)
        run_id = client.get_model_version(model_name, version).run_id
        profiles = monitoring.from_json(
            mlflow.artifacts.load_dict(f"runs:/{run_id}/{PROFILE_ARTIFACT}")
        )
        counts = monitoring.spark_counts(scored, profiles)
        for d in monitoring.drift(profiles, counts):
            kind = "prediction_psi" if d.name == PREDICTION else "feature_psi"
            rows.append((model_name, version, kind, d.name, d.psi, d.level, d.rows))
            print(f"{model_name} v{version} {d.name}: psi {d.psi:.4f} ({d.level})")
        stats = prediction_stats(scored)
        total = int(stats["count"])
        for name, value in stats.items():
            rows.append((model_name, version, "prediction", name, value, None, total))
    out = spark.createDataFrame(rows, MONITORING_SCHEMA).withColumn(
        "monitored_at", sf.current_timestamp()
    )
    out.write.mode("append").saveAsTable(monitoring_table)
    return out
