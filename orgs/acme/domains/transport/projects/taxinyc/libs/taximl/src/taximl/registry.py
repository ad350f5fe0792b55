"""Registered model helpers: which registry, aliases, and the URIs tasks load.

Locally the runner points `MLFLOW_TRACKING_URI`/`MLFLOW_REGISTRY_URI` at a sqlite
database; in a Databricks workspace models go to Unity Catalog. The code uses whatever
is configured and only switches to Unity Catalog inside a Databricks runtime.
Tasks resolve an alias to a version once and load that version, so a model that moves
during a run cannot mix two versions in one result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from taximl.errors import RegistryStateError

CHAMPION = "champion"
CHALLENGER = "challenger"
UNITY_CATALOG = "databricks-uc"
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


def configure_registry(environ: Mapping[str, str] | None = None) -> str:
    """Use Unity Catalog in a Databricks runtime; elsewhere keep what is configured."""
    environ = os.environ if environ is None else environ
    if "DATABRICKS_RUNTIME_VERSION" in environ:
        mlflow.set_registry_uri(UNITY_CATALOG)
    return str(mlflow.get_registry_uri())


def experiment_name(model_name: str) -> str:
    """One experiment per registered model; `/Shared` exists in every workspace."""
    return f"/Shared/{model_name}"


def version_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"


def alias_uri(name: str, alias: str) -> str:
    return f"models:/{name}@{alias}"


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """Alias -> version of a registered model; empty when the model does not exist."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            return {}
        raise
    return {alias: str(version) for alias, version in model.aliases.items()}


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None when the model or alias does not exist."""
    version = aliases(client, name).get(alias)
    return None if version is None else client.get_model_version(name, version)


def require_alias(client: MlflowClient, name: str, alias: str, hint: str) -> ModelVersion:
    """The version an alias points at, or one line saying which task to run first."""
    version = version_by_alias(client, name, alias)
    if version is None:
        raise RegistryStateError(f"model {name} has no '{alias}' version: {hint}")
    return version


def set_alias(client: MlflowClient, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, version)
