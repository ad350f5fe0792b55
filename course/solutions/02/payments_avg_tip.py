"""Revenue per payment type: what the revenue flow's revenue_by_payment task publishes."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as sf


def revenue_by_payment(trips: DataFrame) -> DataFrame:
    """One row per payment type: trips, revenue (total_amount) and the average tip, in cents."""
    return trips.groupBy("payment_type").agg(
        sf.count(sf.lit(1)).alias("trip_count"),
        sf.round(sf.sum("total_amount"), 2).alias("total_revenue"),
        sf.round(sf.avg("tip_amount"), 2).alias("avg_tip"),
    )
