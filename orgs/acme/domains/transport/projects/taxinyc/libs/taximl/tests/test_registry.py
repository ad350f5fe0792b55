"""Training runs, aliases and promotion against a real MLflow sqlite registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyRegressor

from taximl import validation
from taximl.errors import RegistryStateError
from taximl.features import FEATURES, LABEL
from taximl.params import TrainParams
from taximl.registry import (
    CHALLENGER,
    CHAMPION,
    UNITY_CATALOG,
    aliases,
    configure_registry,
    version_by_alias,
)
from taximl.training import PLOT_ARTIFACT, PROFILE_ARTIFACT, TrainResult, train_and_register

from .conftest import MODEL_NAME, MlflowEnv

pytestmark = pytest.mark.unit

TAGS = {
    "git_commit": "1a2b3c4d" * 5,
    "git_branch": "main",
    "pipeline_env": "local",
    "flow": "taximodel",
}
GOOD = TrainParams(max_iter=100)
BAD = TrainParams(max_iter=1, learning_rate=0.01)


def split(features: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return features.iloc[:300], features.iloc[300:]


def train(features: pd.DataFrame, params: TrainParams) -> TrainResult:
    train_rows, heldout = split(features)
    return train_and_register(
        train_rows,
        heldout,
        params=params,
        model_name=MODEL_NAME,
        tags=TAGS,
        source_table="t.s.trips",
    )


def validate_and_apply(features: pd.DataFrame, margin: float = 0.05) -> validation.Decision:
    client = MlflowClient()
    decision = validation.validate(client, MODEL_NAME, split(features)[1], margin)
    validation.apply(client, MODEL_NAME, decision)
    return decision


def test_training_run_records_everything_and_registers_a_challenger(
    mlflow_env: MlflowEnv, features: pd.DataFrame
) -> None:
    result = train(features, GOOD)
    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert {k: run.data.tags[k] for k in TAGS} == TAGS
    assert run.data.params["learning_rate"] == "0.1"
    assert run.data.params["training_rows"] == "300"
    assert run.data.params["heldout_rows"] == "100"
    assert run.data.metrics["heldout_rmse"] == pytest.approx(result.metrics["heldout_rmse"])
    assert 0 < result.metrics["heldout_rmse"] < features[LABEL].std()
    logged = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    logged |= {a.path for a in client.list_artifacts(result.run_id, "monitoring")}
    assert logged == {PLOT_ARTIFACT, PROFILE_ARTIFACT}
    plot = Path(
        mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path=PLOT_ARTIFACT)
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    version = client.get_model_version(MODEL_NAME, result.version)
    assert result.version == "1"
    assert version.aliases == [CHALLENGER]
    assert {k: version.tags[k] for k in TAGS} == TAGS
    info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}/1")
    assert info.signature.inputs.input_names() == list(FEATURES)
    assert info.signature.outputs is not None
    example = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1").input_example
    assert list(example.columns) == list(FEATURES)
    assert len(example) == 5


def test_three_level_names_with_aliases_work_in_the_sqlite_registry(
    mlflow_env: MlflowEnv, features: pd.DataFrame
) -> None:
    train(features, GOOD)
    model = MlflowClient().get_registered_model(MODEL_NAME)
    assert model.name == MODEL_NAME
    # the sqlite store gives versions as ints here, Unity Catalog as strings
    assert {alias: str(v) for alias, v in model.aliases.items()} == {CHALLENGER: "1"}
    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHALLENGER}")
    assert len(loaded.predict(features[list(FEATURES)].head(3))) == 3


def test_first_version_becomes_champion(mlflow_env: MlflowEnv, features: pd.DataFrame) -> None:
    assert version_by_alias(MlflowClient(), MODEL_NAME, CHAMPION) is None
    train(features, BAD)
    decision = validate_and_apply(features)
    assert decision.promote
    assert decision.champion_version is None
    assert aliases(MlflowClient(), MODEL_NAME) == {CHAMPION: "1", CHALLENGER: "1"}


def test_better_challenger_is_promoted(mlflow_env: MlflowEnv, features: pd.DataFrame) -> None:
    train(features, BAD)
    validate_and_apply(features)
    train(features, GOOD)
    decision = validate_and_apply(features)
    assert decision.promote
    assert (decision.challenger_version, decision.champion_version) == ("2", "1")
    assert decision.champion_value is not None
    assert decision.challenger_value < decision.champion_value * 0.95
    assert aliases(MlflowClient(), MODEL_NAME) == {CHAMPION: "2", CHALLENGER: "2"}


def test_worse_challenger_is_not_promoted(mlflow_env: MlflowEnv, features: pd.DataFrame) -> None:
    train(features, GOOD)
    validate_and_apply(features)
    train(features, BAD)
    decision = validate_and_apply(features)
    assert not decision.promote
    assert decision.champion_value is not None
    assert decision.challenger_value > decision.champion_value
    assert aliases(MlflowClient(), MODEL_NAME) == {CHAMPION: "1", CHALLENGER: "2"}


def test_challenger_better_by_less_than_the_margin_is_not_promoted(
    mlflow_env: MlflowEnv, features: pd.DataFrame
) -> None:
    train(features, GOOD)
    validate_and_apply(features)
    train(features, TrainParams(max_iter=100, seed=1))
    decision = validate_and_apply(features, margin=0.5)
    assert not decision.promote
    assert aliases(MlflowClient(), MODEL_NAME)[CHAMPION] == "1"


def test_crashing_challenger_never_moves_champion(
    mlflow_env: MlflowEnv, features: pd.DataFrame
) -> None:
    train(features, GOOD)
    validate_and_apply(features)
    # a challenger that cannot score held-out rows: it expects a column they lack
    x = pd.DataFrame({"not_a_feature": [1.0, 2.0, 3.0]})
    broken = DummyRegressor().fit(x, [0.0, 1.0, 2.0])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            broken,
            name="model",
            signature=mlflow.models.infer_signature(x, broken.predict(x)),
            registered_model_name=MODEL_NAME,
        )
    MlflowClient().set_registered_model_alias(
        MODEL_NAME, CHALLENGER, str(info.registered_model_version)
    )
    with pytest.raises(mlflow.exceptions.MlflowException, match="not_a_feature"):
        validate_and_apply(features)
    assert aliases(MlflowClient(), MODEL_NAME) == {CHAMPION: "1", CHALLENGER: "2"}


def test_validation_without_challenger_says_what_to_run(
    mlflow_env: MlflowEnv, features: pd.DataFrame
) -> None:
    with pytest.raises(RegistryStateError) as info:
        validate_and_apply(features)
    assert (
        str(info.value)
        == f"model {MODEL_NAME} has no 'challenger' version: run the training task first"
    )


def test_registry_is_unity_catalog_only_in_a_databricks_runtime(mlflow_env: MlflowEnv) -> None:
    assert configure_registry({}) == mlflow_env.uri
    try:
        assert configure_registry({"DATABRICKS_RUNTIME_VERSION": "16.4"}) == UNITY_CATALOG
        assert mlflow.get_registry_uri() == UNITY_CATALOG
    finally:
        mlflow.set_registry_uri(mlflow_env.uri)
