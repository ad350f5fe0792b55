"""Staging's revenue run: every published table has rows, and the revenue per borough adds up
to the revenue of the trips ingest published in the same deployment."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as sf

from meshops.testing.integration import Deployment

pytestmark = pytest.mark.integration

INGEST = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/ingest"
TABLES = ("revenue_by_borough", "revenue_by_tripmonth", "revenue_per_inhabitant")


@pytest.mark.parametrize("name", TABLES)
def test_the_published_table_has_rows(meshops_deployment: Deployment, name: str) -> None:
    table = meshops_deployment.table(__file__, name)
    assert meshops_deployment.spark.table(table).count() > 0


def test_the_boroughs_revenue_is_the_trips_revenue(meshops_deployment: Deployment) -> None:
    spark = meshops_deployment.spark
    by_borough = spark.table(meshops_deployment.table(__file__, "revenue_by_borough"))
    trips = spark.table(meshops_deployment.table(INGEST, "trips"))
    boroughs = by_borough.agg(sf.sum("total_revenue"), sf.sum("trip_count"), sf.count("*")).first()
    source = trips.agg(sf.sum("total_amount"), sf.count("*")).first()
    assert boroughs is not None and source is not None
    revenue, trip_count, groups = boroughs
    assert trip_count == source[1]
    # each borough's total is rounded to cents: at most half a cent apart per borough
    assert abs(float(revenue) - float(source[0])) <= 0.005 * groups + 1e-6
