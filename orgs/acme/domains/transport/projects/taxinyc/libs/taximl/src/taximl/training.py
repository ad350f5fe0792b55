"""The scikit-learn pipeline, its metrics, and the MLflow run that registers it.

Works on pandas frames of `features.FEATURES` (+ `tip_amount`) so it can be tested and
reused without Spark. The run records parameters, metrics on training and held-out
rows, a predicted-vs-actual plot, the signature and an input example, and the
reference profile monitoring compares scoring data with. Each registered version gets
the alias `challenger` and the run's git tags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from taximl import monitoring
from taximl.features import CATEGORICAL_FEATURES, FEATURES, LABEL, NUMERIC_FEATURES
from taximl.params import TrainParams
from taximl.registry import CHALLENGER, set_alias

METRIC = "rmse"
MODEL_ARTIFACT = "model"
PROFILE_ARTIFACT = "monitoring/reference_profile.json"
PLOT_ARTIFACT = "plots/predicted_vs_actual.png"
# skops (MLflow's safe default format outside Databricks) refuses to load types it has
# not been told to trust; these are the trees of the model this module builds itself.
SKOPS_TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def build_pipeline(params: TrainParams) -> Pipeline:
    """One-hot boroughs and payment type, gradient boosting on everything.

    Histogram gradient boosting handles missing numbers itself and needs no scaling;
    unseen categories at scoring time are ignored rather than failing.
    """
    columns = ColumnTransformer(
        [
            ("numeric", "passthrough", list(NUMERIC_FEATURES)),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL_FEATURES),
            ),
        ]
    )
    model = HistGradientBoostingRegressor(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        max_leaf_nodes=params.max_leaf_nodes,
        early_stopping=False,
        random_state=params.seed,
    )
    return Pipeline([("columns", columns), ("model", model)])


def evaluate(y_true: pd.Series | np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE (the promotion metric), MAE and R² of predicted tips."""
    truth = np.asarray(y_true, dtype="float64")
    pred = np.asarray(y_pred, dtype="float64")
    if truth.size == 0:
        return {METRIC: math.nan, "mae": math.nan, "r2": math.nan}
    return {
        METRIC: float(math.sqrt(mean_squared_error(truth, pred))),
        "mae": float(mean_absolute_error(truth, pred)),
        "r2": float(r2_score(truth, pred)) if truth.size > 1 else math.nan,
    }


def plot(y_true: pd.Series | np.ndarray, y_pred: np.ndarray, title: str) -> Figure:
    """Predicted vs actual tips and the residuals (no pyplot: no global backend state)."""
    truth = np.asarray(y_true, dtype="float64")
    pred = np.asarray(y_pred, dtype="float64")
    fig = Figure(figsize=(10, 4.5))
    scatter, hist = fig.subplots(1, 2)
    scatter.scatter(truth, pred, s=6, alpha=0.5)
    top = float(max(truth.max(initial=0.0), pred.max(initial=0.0)))
    scatter.plot([0.0, top], [0.0, top], color="grey", linewidth=1)
    scatter.set(xlabel="actual tip ($)", ylabel="predicted tip ($)", title=title)
    hist.hist(pred - truth, bins=40)
    hist.set(xlabel="predicted - actual ($)", ylabel="trips", title="residuals")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class TrainResult:
    """The registered version and the run that made it."""

    model_name: str
    version: str
    run_id: str
    metrics: dict[str, float]


def pip_requirements() -> list[str]:
    """Pinned scikit-learn and both serialisers MLflow may use.

    Listing them skips MLflow's requirement inference, which loads the model in a
    subprocess (~10 s) and picks up whatever else happens to be imported.
    """
    return list(
        mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True, include_skops=True)
    )


def train_and_register(
    train: pd.DataFrame,
    heldout: pd.DataFrame,
    *,
    params: TrainParams,
    model_name: str,
    tags: Mapping[str, str],
    source_table: str,
) -> TrainResult:
    """Fit, log the run in the active experiment, register, and alias it `challenger`."""
    x_train, y_train = train[list(FEATURES)], train[LABEL]
    pipeline = build_pipeline(params).fit(x_train, y_train)
    train_pred = pipeline.predict(x_train)
    heldout_pred = pipeline.predict(heldout[list(FEATURES)])
    metrics = {f"train_{k}": v for k, v in evaluate(y_train, train_pred).items()}
    metrics |= {f"heldout_{k}": v for k, v in evaluate(heldout[LABEL], heldout_pred).items()}
    profiles = monitoring.reference_profiles(
        x_train, NUMERIC_FEATURES, CATEGORICAL_FEATURES, predictions=train_pred
    )
    with mlflow.start_run(run_name="training", tags=dict(tags)) as run:
        mlflow.log_params(
            params.as_dict()
            | {
                "source_table": source_table,
                "training_rows": len(train),
                "heldout_rows": len(heldout),
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        mlflow.log_figure(plot(heldout[LABEL], heldout_pred, "held-out trips"), PLOT_ARTIFACT)
        mlflow.log_dict(monitoring.to_json(profiles), PROFILE_ARTIFACT)
        info = mlflow.sklearn.log_model(
            pipeline,
            name=MODEL_ARTIFACT,
            signature=infer_signature(x_train, train_pred),
            input_example=x_train.head(5),
            registered_model_name=model_name,
            pip_requirements=pip_requirements(),
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    set_alias(client, model_name, CHALLENGER, version)
    return TrainResult(
        model_name=model_name, version=version, run_id=run.info.run_id, metrics=metrics
    )
