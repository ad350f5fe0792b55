"""Staging's zones run published the taxi zone lookup."""

from __future__ import annotations

import pytest

from meshops.testing.integration import Deployment

pytestmark = pytest.mark.integration


def test_the_zone_lookup_has_zones(meshops_deployment: Deployment) -> None:
    zones = meshops_deployment.spark.table(meshops_deployment.table(__file__, "taxi_zones"))
    assert zones.count() > 0
