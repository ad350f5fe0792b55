"""Each borough's share of taxi revenue, reconciled with the transport domain's figures.

Finance reads transport's published `revenue_per_inhabitant`; before its report is
trusted, the revenue it holds per borough must equal transport's own
`revenue_by_borough` for the five boroughs, and the shares must add up to one.
The checks are a table (kept for audit) and a failure of the run when one fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as sf
from pyspark.sql.types import BooleanType, StringType, StructField, StructType

from dfcompare import compare

NYC_BOROUGHS = ("Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island")
"""The boroughs finance reports on (the ones with residents)."""

REVENUE_TOLERANCE = 0.005
"""Half a cent: both sides are rounded to cents, so anything more is a real difference."""

SHARE_TOLERANCE = 1e-9

CHECKS_SCHEMA = StructType(
    [
        StructField("check", StringType()),
        StructField("passed", BooleanType()),
        StructField("detail", StringType()),
    ]
)


class ReconciliationError(AssertionError):
    """Finance's figures disagree with the source domain's: the report must not be used."""


def revenue_share(revenue_per_inhabitant: DataFrame) -> DataFrame:
    """borough, total_revenue, revenue_share (fraction of all boroughs' revenue)."""
    total = revenue_per_inhabitant.agg(sf.sum("total_revenue").alias("all_revenue"))
    share = sf.when(sf.col("all_revenue") > 0, sf.col("total_revenue") / sf.col("all_revenue"))
    return revenue_per_inhabitant.crossJoin(total).select(
        "borough",
        "total_revenue",
        sf.coalesce(share, sf.lit(0.0)).alias("revenue_share"),
    )


@dataclass(frozen=True)
class Check:
    """One reconciliation check and its outcome."""

    check: str
    passed: bool
    detail: str


def reconciliation_checks(shares: DataFrame, revenue_by_borough: DataFrame) -> list[Check]:
    """Revenue per borough equals transport's (within half a cent); shares add up to 1.

    A borough without trips is absent from transport's revenue_by_borough but present, with
    0, in revenue_per_inhabitant: it counts as 0 here too, not as a difference.
    """
    spark = revenue_by_borough.sparkSession
    boroughs = spark.createDataFrame([(b,) for b in NYC_BOROUGHS], "borough string")
    source = boroughs.join(
        revenue_by_borough.select("borough", "total_revenue"), on="borough", how="left"
    ).select("borough", sf.coalesce("total_revenue", sf.lit(0.0)).alias("total_revenue"))
    revenue = compare(
        shares.select("borough", "total_revenue"),
        source,
        keys=["borough"],
        abs_tol=REVENUE_TOLERANCE,
    ).summary
    row = shares.agg(sf.sum("revenue_share"), sf.sum("total_revenue")).first()
    share_sum = float(row[0] or 0.0) if row else 0.0
    all_revenue = float(row[1] or 0.0) if row else 0.0
    # no revenue at all gives shares of 0 each: nothing to share, nothing wrong
    shares_ok = abs(share_sum - 1.0) <= SHARE_TOLERANCE or (all_revenue == 0 and share_sum == 0)
    return [
        Check(
            "revenue_matches_transport_revenue_by_borough",
            revenue.same,
            str(revenue),
        ),
        Check("revenue_shares_sum_to_one", shares_ok, f"sum of revenue_share: {share_sum!r}"),
    ]


def checks_table(spark: SparkSession, checks: list[Check]) -> DataFrame:
    """The checks as a table, kept next to the report."""
    return spark.createDataFrame([(c.check, c.passed, c.detail) for c in checks], CHECKS_SCHEMA)


def assert_reconciled(checks: list[Check]) -> None:
    """Fail the run (after the checks were written) when any check failed."""
    failed = [c for c in checks if not c.passed]
    if failed:
        details = "\n".join(f"{c.check}: {c.detail}" for c in failed)
        raise ReconciliationError(
            f"{len(failed)} reconciliation check(s) failed; see the revenue_reconciliation "
            f"table and fix the source data or the report before using it:\n{details}"
        )
