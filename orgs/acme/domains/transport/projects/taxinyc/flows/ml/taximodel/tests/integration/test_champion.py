"""Staging's taximodel run left a champion to serve, and scored the trips with it."""

from __future__ import annotations

import pytest

from meshops.testing.integration import Deployment

pytestmark = pytest.mark.integration

CHAMPION = "champion"


def test_the_model_has_a_champion(meshops_deployment: Deployment) -> None:
    client = meshops_deployment.mlflow_client()
    model = client.get_registered_model(meshops_deployment.model(__file__))
    assert CHAMPION in model.aliases
    version = client.get_model_version_by_alias(model.name, CHAMPION)
    assert version.status == "READY"


def test_the_trips_were_scored_by_the_champion(meshops_deployment: Deployment) -> None:
    client = meshops_deployment.mlflow_client()
    champion = client.get_model_version_by_alias(meshops_deployment.model(__file__), CHAMPION)
    predictions = meshops_deployment.spark.table(meshops_deployment.table(__file__, "predictions"))
    assert predictions.count() > 0
    versions = {str(r[0]) for r in predictions.select("model_version").distinct().collect()}
    assert versions == {str(champion.version)}
