"""Staging's ingest run published the trips its consumers read (`nox -s integration -- --env
staging` runs the staging jobs, then these tests against their tables)."""

from __future__ import annotations

import pytest

from meshops.testing.integration import Deployment

pytestmark = pytest.mark.integration


def test_the_trips_table_has_trips_with_a_borough_and_an_amount(
    meshops_deployment: Deployment,
) -> None:
    trips = meshops_deployment.spark.table(meshops_deployment.table(__file__, "trips"))
    assert {"pickup_borough", "total_amount", "tpep_pickup_datetime"} <= set(trips.columns)
    assert trips.count() > 0
