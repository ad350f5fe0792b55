"""The flow's tasks on local Spark tables and a real MLflow sqlite registry."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from taximl.errors import InputTableError, RegistryStateError
from taximl.features import FEATURES, KEY, LABEL, split, trip_features
from taximl.params import TrainParams
from taximl.registry import CHALLENGER, CHAMPION, aliases, experiment_name
from taximl.tasks import batch_inference_task, monitoring_task, train_task, validate_task
from taximl.training import train_and_register

from .conftest import MODEL_NAME, MlflowEnv, make_trips

pytestmark = pytest.mark.spark

DB = "spark_catalog.taximl"
TAGS = {
    "git_commit": "0123abcd" * 5,
    "git_branch": "main",
    "pipeline_env": "local",
    "flow": "taximodel",
}
GOOD = TrainParams(max_iter=60)
BAD = TrainParams(max_iter=1, learning_rate=0.01)


@pytest.fixture
def db(spark: SparkSession, request: pytest.FixtureRequest) -> str:
    """A fresh schema per test (the state dir is the test process's own; no clean-up)."""
    name = f"{DB}_{request.node.name.removeprefix('test_')[:40]}"
    spark.sql(f"CREATE SCHEMA {name}")
    return name


def save(spark: SparkSession, pdf: pd.DataFrame, name: str) -> str:
    spark.createDataFrame(pdf).write.mode("overwrite").saveAsTable(name)
    return name


def train(spark: SparkSession, db: str, params: TrainParams = GOOD) -> str:
    result = train_task(
        spark,
        trips_table=f"{db}.trips",
        heldout_table=f"{db}.heldout",
        model_name=MODEL_NAME,
        params=params,
        tags=TAGS,
    )
    return result.version


def validate(spark: SparkSession, db: str, margin: float = 0.05) -> bool:
    decision = validate_task(
        spark,
        heldout_table=f"{db}.heldout",
        validation_table=f"{db}.validation",
        model_name=MODEL_NAME,
        margin=margin,
        tags=TAGS,
    )
    return decision.promote


def test_trip_features_of_one_trip(spark: SparkSession) -> None:
    trips = spark.createDataFrame(
        [
            (
                "t1",
                "2016-02-05 23:10:00",
                "2016-02-05 23:40:30",
                "Queens",
                None,
                2,
                7.5,
                22.0,
                4.0,
                5.76,
                1,
            ),
            (
                "t2",
                "2016-02-06 08:00:00",
                "2016-02-06 08:05:00",
                "Bronx",
                "Bronx",
                1,
                0.8,
                5.0,
                None,
                0.0,
                2,
            ),
        ],
        "trip_id string, tpep_pickup_datetime string, tpep_dropoff_datetime string, "
        "pickup_borough string, dropoff_borough string, passenger_count int, trip_distance double, "
        "fare_amount double, tip_amount double, tolls_amount double, payment_type int",
    )
    expected = spark.createDataFrame(
        [("t1", 7.5, 2.0, 22.0, 5.76, 30.5, 23.0, 6.0, "Queens", "unknown", "1", 4.0)],
        f"{KEY} string, trip_distance double, passenger_count double, fare_amount double, "
        "tolls_amount double, duration_min double, pickup_hour double, pickup_dow double, "
        f"pickup_borough string, dropoff_borough string, payment_type string, {LABEL} double",
    )
    # the trip without a tip amount cannot train or evaluate a model
    assertDataFrameEqual(trip_features(trips, table="x", with_label=True), expected)
    unlabelled = trip_features(trips, table="x", with_label=False)
    assert unlabelled.columns == [KEY, *FEATURES]
    assert unlabelled.count() == 2


def test_split_is_disjoint_and_the_same_every_time(
    spark: SparkSession, trips: pd.DataFrame
) -> None:
    features = trip_features(spark.createDataFrame(trips), table="x", with_label=True)
    train_a, heldout_a = split(features, 20)
    train_b, heldout_b = split(features, 20)
    a = {r[KEY] for r in heldout_a.select(KEY).collect()}
    assert a == {r[KEY] for r in heldout_b.select(KEY).collect()}
    assert not a & {r[KEY] for r in train_a.select(KEY).collect()}
    assert train_a.count() + len(a) == len(trips)
    assert 0.12 * len(trips) < len(a) < 0.28 * len(trips)
    assertDataFrameEqual(train_a, train_b)


def test_train_validate_score_and_monitor(
    spark: SparkSession, db: str, mlflow_env: MlflowEnv, trips: pd.DataFrame
) -> None:
    save(spark, trips, f"{db}.trips")
    client = MlflowClient()

    assert train(spark, db, BAD) == "1"
    heldout = spark.table(f"{db}.heldout")
    assert heldout.columns == [KEY, *FEATURES, LABEL]
    assert 40 < heldout.count() < 120
    assert validate(spark, db)  # the first version becomes champion
    assert train(spark, db, GOOD) == "2"
    assert validate(spark, db)  # much better: promoted
    assert train(spark, db, BAD) == "3"
    assert not validate(spark, db)  # worse: champion stays
    assert aliases(client, MODEL_NAME) == {CHAMPION: "2", CHALLENGER: "3"}

    decisions = spark.table(f"{db}.validation").orderBy("challenger_version").toPandas()
    assert decisions["challenger_version"].tolist() == ["1", "2", "3"]
    assert decisions["champion_version"].tolist() == [None, "1", "2"]
    assert decisions["promoted"].tolist() == [True, True, False]
    assert decisions["validated_at"].notna().all()
    assert decisions["champion_value"].iloc[1] == pytest.approx(
        decisions["challenger_value"].iloc[0]
    )
    runs = mlflow.search_runs(
        experiment_names=[experiment_name(MODEL_NAME)], filter_string="tags.decision = 'keep'"
    )
    assert len(runs) == 1
    assert runs["metrics.challenger_rmse"].iloc[0] == pytest.approx(
        decisions["challenger_value"].iloc[2]
    )
    assert runs["tags.git_commit"].iloc[0] == TAGS["git_commit"]

    # inference uses the champion (v2), not the latest version (v3)
    scored = batch_inference_task(
        spark,
        trips_table=f"{db}.trips",
        predictions_table=f"{db}.predictions",
        model_name=MODEL_NAME,
    )
    assert (scored.version, scored.rows) == ("2", len(trips))
    predictions = spark.table(f"{db}.predictions").orderBy(KEY).toPandas()
    assert set(predictions["model_version"]) == {"2"}
    assert set(predictions["model_name"]) == {MODEL_NAME}
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    in_process = champion.predict(predictions[list(FEATURES)])
    np.testing.assert_allclose(predictions["prediction"], in_process, rtol=1e-9)

    monitored = monitoring_task(
        spark,
        predictions_table=f"{db}.predictions",
        monitoring_table=f"{db}.monitoring",
        model_name=MODEL_NAME,
    )
    rows = spark.table(f"{db}.monitoring").toPandas()
    assert len(rows) == monitored.count() == len(FEATURES) + 1 + 10
    psi = rows[rows["kind"] == "feature_psi"].set_index("name")
    assert sorted(psi.index) == sorted(FEATURES)
    # the scored trips include the training trips: no drift
    assert (psi["value"] < 0.1).all()
    assert set(psi["level"]) == {"stable"}
    assert set(rows["model_version"]) == {"2"}
    stats = rows[rows["kind"] == "prediction"].set_index("name")["value"]
    assert stats["count"] == len(trips)
    assert stats["mean"] == pytest.approx(in_process.mean())
    assert stats["min"] <= stats["p05"] <= stats["p50"] <= stats["p95"] <= stats["max"]
    assert len(rows[rows["kind"] == "prediction_psi"]) == 1

    # shifted trips: the shift shows up in the monitoring table
    shifted = make_trips(300, seed=11, start_id=10_000)
    shifted["trip_distance"] = shifted["trip_distance"] * 4
    save(spark, shifted, f"{db}.new_trips")
    batch_inference_task(
        spark,
        trips_table=f"{db}.new_trips",
        predictions_table=f"{db}.predictions",
        model_name=MODEL_NAME,
    )
    monitoring_task(
        spark,
        predictions_table=f"{db}.predictions",
        monitoring_table=f"{db}.monitoring",
        model_name=MODEL_NAME,
    )
    latest = spark.table(f"{db}.monitoring").toPandas()
    assert len(latest) == 2 * len(rows)  # appended
    last = latest[latest["monitored_at"] == latest["monitored_at"].max()]
    drift = last[last["kind"] == "feature_psi"].set_index("name")
    assert drift.loc["trip_distance", "level"] == "drift"
    assert drift.loc["pickup_borough", "level"] == "stable"


def test_missing_input_table_is_one_line_naming_it(
    spark: SparkSession, db: str, mlflow_env: MlflowEnv
) -> None:
    for table in (f"{db}.trips", "spark_catalog.no_such_schema.trips"):
        with pytest.raises(InputTableError) as info:
            train_task(
                spark,
                trips_table=table,
                heldout_table=f"{db}.heldout",
                model_name=MODEL_NAME,
                params=GOOD,
                tags=TAGS,
            )
        assert (
            str(info.value)
            == f"table {table} does not exist: run the task or flow that writes it first"
        )


def test_empty_training_set_is_one_line_naming_the_table(
    spark: SparkSession, db: str, mlflow_env: MlflowEnv, trips: pd.DataFrame
) -> None:
    no_tips = trips.head(20).assign(tip_amount=np.nan)
    save(spark, no_tips, f"{db}.trips")
    with pytest.raises(InputTableError) as info:
        train(spark, db)
    assert str(info.value) == f"table {db}.trips has no trips with a tip_amount to train on"
    assert aliases(MlflowClient(), MODEL_NAME) == {}


def test_table_without_trip_columns_is_one_line(
    spark: SparkSession, db: str, mlflow_env: MlflowEnv
) -> None:
    save(spark, pd.DataFrame({"trip_id": [1], "fare_amount": [3.0]}), f"{db}.trips")
    with pytest.raises(InputTableError) as info:
        train(spark, db)
    assert str(info.value).startswith(f"table {db}.trips lacks columns tpep_pickup_datetime, ")
    assert str(info.value).endswith(": expected NYC taxi trips")


def test_inference_without_champion_says_what_to_run(
    spark: SparkSession, db: str, mlflow_env: MlflowEnv, trips: pd.DataFrame, features: pd.DataFrame
) -> None:
    save(spark, trips, f"{db}.trips")
    train_and_register(
        features, features, params=BAD, model_name=MODEL_NAME, tags=TAGS, source_table="trips"
    )
    with pytest.raises(RegistryStateError) as info:
        batch_inference_task(
            spark,
            trips_table=f"{db}.trips",
            predictions_table=f"{db}.predictions",
            model_name=MODEL_NAME,
        )
    assert (
        str(info.value)
        == f"model {MODEL_NAME} has no 'champion' version: run the validation task first"
    )


def test_empty_heldout_table_is_one_line(
    spark: SparkSession, db: str, mlflow_env: MlflowEnv, trips: pd.DataFrame
) -> None:
    features = trip_features(spark.createDataFrame(trips), table="trips", with_label=True)
    features.limit(0).write.saveAsTable(f"{db}.empty")
    with pytest.raises(InputTableError) as info:
        validate_task(
            spark,
            heldout_table=f"{db}.empty",
            validation_table=f"{db}.validation",
            model_name=MODEL_NAME,
            margin=0.0,
            tags=TAGS,
        )
    assert str(info.value) == f"table {db}.empty has no rows to validate on: run training first"
