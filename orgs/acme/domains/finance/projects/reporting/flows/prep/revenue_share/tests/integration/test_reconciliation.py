"""Staging's finance report agrees with the transport domain it was built from: the revenue
per borough is transport's `revenue_by_borough`, the shares add up to one, and the audit
table of the run says every check passed."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as sf

from meshops.testing.integration import Deployment
from reporting.revenue_share import NYC_BOROUGHS

pytestmark = pytest.mark.integration

REVENUE = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/revenue"


def test_finance_revenue_reconciles_with_transport_revenue(
    meshops_deployment: Deployment,
) -> None:
    spark = meshops_deployment.spark
    shares = spark.table(meshops_deployment.table(__file__, "revenue_share"))
    transport = spark.table(meshops_deployment.table(REVENUE, "revenue_by_borough"))
    finance = {r["borough"]: float(r["total_revenue"]) for r in shares.collect()}
    source = {r["borough"]: float(r["total_revenue"]) for r in transport.collect()}
    assert set(finance) == set(NYC_BOROUGHS)
    for borough in NYC_BOROUGHS:  # a borough without trips is 0 on finance's side
        assert finance[borough] == pytest.approx(source.get(borough, 0.0), abs=0.005), borough
    total = shares.agg(sf.sum("revenue_share")).first()
    assert total is not None and total[0] == pytest.approx(1.0)


def test_every_reconciliation_check_of_the_run_passed(meshops_deployment: Deployment) -> None:
    checks = meshops_deployment.spark.table(
        meshops_deployment.table(__file__, "revenue_reconciliation")
    ).collect()
    assert checks and all(c["passed"] for c in checks), [c.asDict() for c in checks]
