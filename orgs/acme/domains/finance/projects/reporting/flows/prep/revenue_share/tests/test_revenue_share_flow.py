"""The revenue_share flow's logic on transport's published tables (as their schema says).

The flow reads two data products of the transport domain; these tests build them with
the columns transport publishes and run the notebook's steps: shares, checks table,
and the failure that stops a report built on figures transport does not agree with.
"""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from reporting.revenue_share import (
    CHECKS_SCHEMA,
    ReconciliationError,
    assert_reconciled,
    checks_table,
    reconciliation_checks,
    revenue_share,
)

pytestmark = pytest.mark.spark

# transport.taxinyc.revenue.revenue_per_inhabitant and .revenue_by_borough
PER_INHABITANT = (
    "borough string, population bigint, trip_count bigint, total_revenue double, "
    "revenue_per_inhabitant double"
)
BY_BOROUGH = (
    "borough string, trip_count bigint, total_fare double, total_tips double, total_revenue double"
)
POPULATION = {
    "Bronx": 1_472_654,
    "Brooklyn": 2_736_074,
    "Manhattan": 1_694_251,
    "Queens": 2_405_464,
    "Staten Island": 495_747,
}
REVENUE = {
    "Bronx": 120.5,
    "Brooklyn": 361.5,
    "Manhattan": 1446.0,
    "Queens": 482.0,
    "Staten Island": 0.0,
}


def transport_tables(
    spark: SparkSession, per_inhabitant_revenue: dict[str, float]
) -> tuple[DataFrame, DataFrame]:
    per_inhabitant = spark.createDataFrame(
        [(b, POPULATION[b], 3, r, r / POPULATION[b]) for b, r in per_inhabitant_revenue.items()],
        PER_INHABITANT,
    )
    by_borough = spark.createDataFrame(
        [(b, 3, r * 0.8, r * 0.1, r) for b, r in REVENUE.items()]
        + [("EWR", 1, 70.0, 10.0, 97.38), ("Unknown", 2, 20.0, 2.0, 30.0)],
        BY_BOROUGH,
    )
    return per_inhabitant, by_borough


def test_shares_and_passing_checks(spark: SparkSession) -> None:
    per_inhabitant, by_borough = transport_tables(spark, REVENUE)
    shares = revenue_share(per_inhabitant)
    assertDataFrameEqual(
        shares,
        spark.createDataFrame(
            [
                ("Bronx", 120.5, 0.05),
                ("Brooklyn", 361.5, 0.15),
                ("Manhattan", 1446.0, 0.6),
                ("Queens", 482.0, 0.2),
                ("Staten Island", 0.0, 0.0),
            ],
            "borough string, total_revenue double, revenue_share double",
        ),
    )
    checks = reconciliation_checks(shares, by_borough)
    table = checks_table(spark, checks)
    assert table.schema == CHECKS_SCHEMA
    assert [(r["check"], r["passed"]) for r in table.collect()] == [
        ("revenue_matches_transport_revenue_by_borough", True),
        ("revenue_shares_sum_to_one", True),
    ]
    assert_reconciled(checks)


def test_report_on_disagreeing_transport_figures_fails(spark: SparkSession) -> None:
    stale = {**REVENUE, "Manhattan": 1400.0}  # per-inhabitant table from an older run
    per_inhabitant, by_borough = transport_tables(spark, stale)
    checks = reconciliation_checks(revenue_share(per_inhabitant), by_borough)
    table = {r["check"]: r for r in checks_table(spark, checks).collect()}
    assert table["revenue_matches_transport_revenue_by_borough"]["passed"] is False
    assert (
        "borough='Manhattan': total_revenue: 1400.0 != 1446.0"
        in (table["revenue_matches_transport_revenue_by_borough"]["detail"])
    )
    with pytest.raises(ReconciliationError, match="revenue_matches_transport_revenue_by_borough"):
        assert_reconciled(checks)
