"""Revenue aggregates of the revenue flow, and revenue per inhabitant of each borough.

Revenue is what riders paid (`total_amount`: fare, tip, tolls and surcharges). Money
sums are rounded to cents so tables are stable whatever order Spark adds rows in.
Trips are counted by pickup borough: that is where the cab earned the money.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as sf

if TYPE_CHECKING:
    import pandas as pd

NYC_BOROUGHS = ("Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island")
"""The five boroughs with a census population (EWR and Unknown have none)."""


def _cents(column: str) -> Column:
    return sf.round(sf.sum(column), 2)


def revenue_by_borough(trips: DataFrame) -> DataFrame:
    """Per pickup borough: trips, fares, tips and total revenue."""
    return trips.groupBy(sf.col("pickup_borough").alias("borough")).agg(
        sf.count(sf.lit(1)).alias("trip_count"),
        _cents("fare_amount").alias("total_fare"),
        _cents("tip_amount").alias("total_tips"),
        _cents("total_amount").alias("total_revenue"),
    )


def revenue_by_tripmonth(trips: DataFrame) -> DataFrame:
    """Per calendar month of pickup (`trip_month` is the month's first day)."""
    month = sf.trunc(sf.to_date("tpep_pickup_datetime"), "month").alias("trip_month")
    return trips.groupBy(month).agg(
        sf.count(sf.lit(1)).alias("trip_count"),
        _cents("total_amount").alias("total_revenue"),
        sf.round(sf.avg("total_amount"), 2).alias("avg_revenue_per_trip"),
    )


def borough_population(
    data: pd.DataFrame | DataFrame, spark: SparkSession | None = None
) -> DataFrame:
    """Validated `borough, population` table from the census file (pandas or Spark).

    The file is typed by hand, so it is checked: both columns present, each of the five
    boroughs once, populations positive whole numbers ("1,472,654" is accepted).
    """
    if not isinstance(data, DataFrame):
        session = spark or SparkSession.active()
        data = session.createDataFrame(data.astype(str))
    missing = [c for c in ("borough", "population") if c not in data.columns]
    if missing:
        raise ValueError(f"population data lacks column(s) {', '.join(missing)}")
    digits = sf.regexp_replace(sf.trim(sf.col("population").cast("string")), ",", "")
    table = data.select(
        sf.trim(sf.col("borough").cast("string")).alias("borough"),
        sf.when(digits.rlike("^[0-9]+$"), digits.cast("long")).alias("population"),
    )
    rows = table.collect()  # five rows: checking in Python gives the clearest messages
    bad = [r["borough"] for r in rows if r["population"] is None or r["population"] <= 0]
    if bad:
        raise ValueError(f"population of {', '.join(map(str, bad))} is not a positive number")
    names = [r["borough"] for r in rows]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"borough(s) listed more than once: {', '.join(dupes)}")
    if sorted(names) != sorted(NYC_BOROUGHS):
        raise ValueError(
            f"expected the five boroughs {', '.join(NYC_BOROUGHS)}; got {', '.join(sorted(names))}"
        )
    return table


def revenue_per_inhabitant(revenue_by_borough: DataFrame, population: DataFrame) -> DataFrame:
    """Revenue per resident of every borough with a population.

    A borough without trips is reported with 0 trips and 0 revenue rather than left
    out, so reports always cover all boroughs; places without residents (EWR,
    Unknown) have no per-inhabitant figure and are left out.
    """
    joined = population.join(revenue_by_borough, on="borough", how="left")
    trips = sf.coalesce(sf.col("trip_count"), sf.lit(0).cast("long"))
    revenue = sf.coalesce(sf.col("total_revenue"), sf.lit(0.0))
    return joined.select(
        "borough",
        "population",
        trips.alias("trip_count"),
        revenue.alias("total_revenue"),
        (revenue / sf.col("population")).alias("revenue_per_inhabitant"),
    )
