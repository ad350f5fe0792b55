"""Fixtures of the taximl tests: NYC-like trips and a real MLflow sqlite registry.

`spark` comes from the meshops pytest plugin (one local session per test process).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from taximl.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES, UNKNOWN
from taximl.registry import experiment_name

MODEL_NAME = "acme_transport_taxinyc.local_jdoe_main_1a2b3c4d_taximodel.taxinyc_taximodel"
BOROUGHS = ("Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR")
PAYMENTS = ("card", "cash", "no_charge", "dispute")


def make_trips(n: int, seed: int = 7, start_id: int = 1) -> pd.DataFrame:
    """Trips like `samples.nyctaxi.trips` (and tools/taxigen.py): card payments tip about
    18 % of the fare, more at night, other payments none; a few boroughs and passenger
    counts are missing."""
    rng = np.random.default_rng(seed)
    pickup = pd.Timestamp("2016-02-01") + pd.to_timedelta(
        rng.integers(0, 28 * 24 * 60, n), unit="min"
    )
    distance = np.round(rng.gamma(2.0, 1.6, n), 2)
    minutes = np.maximum(2.0, distance * rng.uniform(2.5, 5.0, n))
    fare = np.round(2.5 + 2.5 * distance + 0.3 * minutes, 2)
    tolls = np.where(rng.random(n) < 0.08, 5.76, 0.0)
    payment = rng.choice(PAYMENTS, size=n, p=[0.72, 0.24, 0.02, 0.02])
    night = (pickup.hour >= 20) | (pickup.hour < 5)
    tip = np.where(payment == "card", fare * (0.16 + 0.04 * night) + rng.normal(0, 0.4, n), 0.0)
    tip = np.round(np.maximum(tip, 0.0), 2)
    pickup_borough = rng.choice(BOROUGHS, size=n, p=[0.6, 0.15, 0.15, 0.05, 0.02, 0.03])
    passengers = pd.array(rng.integers(1, 5, n), dtype="Int64")
    missing = rng.random(n) < 0.02
    passengers[missing] = pd.NA
    return pd.DataFrame(
        {
            "trip_id": np.arange(start_id, start_id + n, dtype="int64"),
            "tpep_pickup_datetime": pickup,
            "tpep_dropoff_datetime": pickup + pd.to_timedelta(minutes, unit="min").round("s"),
            "pickup_borough": np.where(missing, None, pickup_borough),
            "dropoff_borough": rng.choice(BOROUGHS, size=n, p=[0.55, 0.2, 0.15, 0.05, 0.02, 0.03]),
            "passenger_count": passengers,
            "trip_distance": distance,
            "fare_amount": fare,
            "tip_amount": tip,
            "tolls_amount": tolls,
            "total_amount": np.round(fare + tip + tolls + 0.5, 2),
            "payment_type": payment,
        }
    )


def pandas_features(trips: pd.DataFrame) -> pd.DataFrame:
    """The model's features of `make_trips` rows, derived in pandas (for JVM-free tests)."""
    pickup, dropoff = trips["tpep_pickup_datetime"], trips["tpep_dropoff_datetime"]
    out = pd.DataFrame(
        {
            "trip_id": trips["trip_id"],
            "trip_distance": trips["trip_distance"].astype("float64"),
            "passenger_count": trips["passenger_count"]
            .astype("Float64")
            .to_numpy("float64", na_value=np.nan),
            "fare_amount": trips["fare_amount"].astype("float64"),
            "tolls_amount": trips["tolls_amount"].astype("float64"),
            "duration_min": (dropoff - pickup).dt.total_seconds() / 60.0,
            "pickup_hour": pickup.dt.hour.astype("float64"),
            "pickup_dow": ((pickup.dt.dayofweek + 1) % 7 + 1).astype("float64"),
        }
    )
    for name in CATEGORICAL_FEATURES:
        out[name] = trips[name].fillna(UNKNOWN).astype(str)
    out["tip_amount"] = trips["tip_amount"].astype("float64")
    assert list(out.columns[1:-1]) == [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
    return out


@pytest.fixture(scope="session")
def trips() -> pd.DataFrame:
    return make_trips(400)


@pytest.fixture(scope="session")
def features(trips: pd.DataFrame) -> pd.DataFrame:
    return pandas_features(trips)


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite database with its schema made once (migrations take seconds)."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.sqlite"
    MlflowClient(f"sqlite:///{path}", f"sqlite:///{path}").search_experiments()
    return path


@dataclass(frozen=True)
class MlflowEnv:
    """A fresh local tracking server's worth of state, configured like the local runner."""

    uri: str
    artifacts: Path
    env: dict[str, str]


@pytest.fixture
def mlflow_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_db: Path
) -> Iterator[MlflowEnv]:
    """Tracking and registry in a sqlite file of this test, via the variables the runner sets.

    The model's experiment is made up front with its artifacts in the test's folder.
    """
    db = tmp_path / "mlflow.sqlite"
    shutil.copy(empty_mlflow_db, db)
    uri = f"sqlite:///{db}"
    # forget URIs an earlier test set in-process (this also unsets their variables)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.chdir(tmp_path)
    artifacts = tmp_path / "mlartifacts"
    MlflowClient().create_experiment(
        experiment_name(MODEL_NAME), artifact_location=artifacts.as_uri()
    )
    mlflow.set_experiment(experiment_name(MODEL_NAME))
    yield MlflowEnv(
        uri=uri, artifacts=artifacts, env={"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    )
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
