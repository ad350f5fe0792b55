"""Revenue shares and the reconciliation checks, against hand-computed values."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from reporting.revenue_share import (
    Check,
    ReconciliationError,
    assert_reconciled,
    checks_table,
    reconciliation_checks,
    revenue_share,
)

pytestmark = pytest.mark.spark

PER_INHABITANT = "borough string, population bigint, trip_count bigint, total_revenue double"
BY_BOROUGH = "borough string, trip_count bigint, total_revenue double"
SHARES = "borough string, total_revenue double, revenue_share double"


def per_inhabitant(spark: SparkSession, revenue: dict[str, float]) -> DataFrame:
    rows = [(b, 1000, 1, r) for b, r in revenue.items()]
    frame = spark.createDataFrame(rows, PER_INHABITANT)
    return frame.withColumn("revenue_per_inhabitant", sf.col("total_revenue") / 1000)


REVENUE = {"Bronx": 10.0, "Brooklyn": 30.0, "Manhattan": 50.0, "Queens": 10.0, "Staten Island": 0.0}


def test_revenue_share_is_each_boroughs_fraction(spark: SparkSession) -> None:
    expected = spark.createDataFrame(
        [
            ("Bronx", 10.0, 0.1),
            ("Brooklyn", 30.0, 0.3),
            ("Manhattan", 50.0, 0.5),
            ("Queens", 10.0, 0.1),
            ("Staten Island", 0.0, 0.0),
        ],
        SHARES,
    )
    assertDataFrameEqual(revenue_share(per_inhabitant(spark, REVENUE)), expected)


def test_no_revenue_at_all_gives_zero_shares(spark: SparkSession) -> None:
    shares = revenue_share(per_inhabitant(spark, dict.fromkeys(REVENUE, 0.0)))
    assert {r["revenue_share"] for r in shares.collect()} == {0.0}


def test_checks_pass_when_transport_figures_agree(spark: SparkSession) -> None:
    shares = revenue_share(per_inhabitant(spark, REVENUE))
    source = spark.createDataFrame(
        [(b, 1, r + 0.004) for b, r in REVENUE.items()] + [("EWR", 1, 70.0), ("Unknown", 1, 5.0)],
        BY_BOROUGH,
    )
    checks = reconciliation_checks(shares, source)
    assert [(c.check, c.passed) for c in checks] == [
        ("revenue_matches_transport_revenue_by_borough", True),
        ("revenue_shares_sum_to_one", True),
    ]
    assert checks[0].detail.startswith("DataFrames are the same: left 5 rows, right 5 rows")
    assert_reconciled(checks)
    assertDataFrameEqual(
        checks_table(spark, checks).select("check", "passed"),
        [
            ("revenue_matches_transport_revenue_by_borough", True),
            ("revenue_shares_sum_to_one", True),
        ],
    )


def test_a_borough_without_trips_counts_as_zero_revenue(spark: SparkSession) -> None:
    """Transport leaves a borough without trips out of revenue_by_borough (found by the
    mesh run test on 400 trips, where Staten Island had none)."""
    shares = revenue_share(per_inhabitant(spark, REVENUE))
    source = spark.createDataFrame(
        [(b, 1, r) for b, r in REVENUE.items() if b != "Staten Island"], BY_BOROUGH
    )
    revenue_check, _ = reconciliation_checks(shares, source)
    assert revenue_check.passed, revenue_check.detail


def test_checks_fail_on_changed_and_missing_boroughs(spark: SparkSession) -> None:
    without_bronx = {k: v for k, v in REVENUE.items() if k != "Bronx"}
    shares = revenue_share(per_inhabitant(spark, without_bronx))
    source = spark.createDataFrame(
        [(b, 1, r + (1.0 if b == "Queens" else 0.0)) for b, r in REVENUE.items()], BY_BOROUGH
    )
    revenue_check, share_check = reconciliation_checks(shares, source)
    assert not revenue_check.passed
    assert share_check.passed
    assert "1 only in right, 1 changed" in revenue_check.detail
    assert "(borough='Bronx', total_revenue=10.0)" in revenue_check.detail
    assert "borough='Queens': total_revenue: 10.0 != 11.0" in revenue_check.detail


def test_shares_not_summing_to_one_fail(spark: SparkSession) -> None:
    shares = spark.createDataFrame([("Bronx", 1.0, 0.6), ("Queens", 1.0, 0.6)], SHARES)
    source = spark.createDataFrame([("Bronx", 1, 1.0), ("Queens", 1, 1.0)], BY_BOROUGH)
    _, share_check = reconciliation_checks(shares, source)
    assert share_check == Check("revenue_shares_sum_to_one", False, "sum of revenue_share: 1.2")


def test_assert_reconciled_lists_failed_checks() -> None:
    checks = [Check("a", True, "fine"), Check("b", False, "Queens differs")]
    with pytest.raises(ReconciliationError, match=r"1 reconciliation check\(s\) failed") as caught:
        assert_reconciled(checks)
    assert str(caught.value).endswith("b: Queens differs")
