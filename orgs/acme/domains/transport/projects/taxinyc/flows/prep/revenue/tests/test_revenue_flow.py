"""The revenue flow's logic: its static census file and its tasks chained on clean trips."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from dfcompare import assert_same
from taxinyc.ingest import TRIPS_SCHEMA
from taxinyc.revenue import (
    NYC_BOROUGHS,
    borough_population,
    revenue_by_borough,
    revenue_by_tripmonth,
    revenue_per_inhabitant,
)

pytestmark = pytest.mark.spark

FLOW = Path(__file__).resolve().parents[1]
CENSUS_2020 = {
    "Bronx": 1_472_654,
    "Brooklyn": 2_736_074,
    "Manhattan": 1_694_251,
    "Queens": 2_405_464,
    "Staten Island": 495_747,
}
BOROUGHS = (*NYC_BOROUGHS, "EWR", "Unknown")


@pytest.fixture(scope="module")
def trips(spark: SparkSession) -> DataFrame:
    """A few hundred clean trips, every borough and month, amounts in cents."""
    rows = []
    start = datetime(2024, 1, 1, 6, 0)
    for i in range(300):
        pickup = start + timedelta(hours=13 * i + i % 7)
        fare = 5 + (i * 37 % 4000) / 100
        tip = (i * 13 % 900) / 100 if i % 3 else 0.0
        tolls = 6.94 if i % 11 == 0 else 0.0
        total = round(fare + tip + tolls + 4.0, 2)
        borough = BOROUGHS[i * 5 % len(BOROUGHS)]
        dropoff = pickup + timedelta(minutes=9 + i % 30)
        payment = "card" if i % 4 else "cash"
        distance = 0.5 + i % 20
        passengers = 1 + i % 3
        rows.append(
            (
                i + 1,
                pickup,
                dropoff,
                borough,
                "Manhattan",
                passengers,
                distance,
                fare,
                tip,
                tolls,
                total,
                payment,
            )
        )
    return spark.createDataFrame(rows, TRIPS_SCHEMA)


def test_static_census_file_has_the_2020_populations(spark: SparkSession) -> None:
    census = pd.read_csv(FLOW / "static_data" / "borough_population_2020.csv")
    expected = spark.createDataFrame(list(CENSUS_2020.items()), "borough string, population bigint")
    assertDataFrameEqual(borough_population(census, spark), expected)


def test_revenue_by_borough_matches_sums_in_python(spark: SparkSession, trips: DataFrame) -> None:
    per_borough: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for r in trips.collect():
        acc = per_borough[r["pickup_borough"]]
        acc[0] += 1
        acc[1] += r["fare_amount"]
        acc[2] += r["tip_amount"]
        acc[3] += r["total_amount"]
    expected = spark.createDataFrame(
        [(b, int(n), fare, tip, total) for b, (n, fare, tip, total) in per_borough.items()],
        "borough string, trip_count bigint, total_fare double, total_tips double, "
        "total_revenue double",
    )
    assert set(per_borough) == set(BOROUGHS)
    assert_same(revenue_by_borough(trips), expected, keys=["borough"], abs_tol=0.005)


def test_months_and_boroughs_add_up_to_the_same_revenue(trips: DataFrame) -> None:
    by_month = revenue_by_tripmonth(trips).collect()
    by_borough = revenue_by_borough(trips).collect()
    months = {r["tpep_pickup_datetime"].date().replace(day=1) for r in trips.collect()}
    assert {r["trip_month"] for r in by_month} == months
    assert len(months) == 6  # 300 trips about 13 hours apart: January to June 2024
    assert sum(r["trip_count"] for r in by_month) == 300
    assert sum(r["total_revenue"] for r in by_month) == pytest.approx(
        sum(r["total_revenue"] for r in by_borough), abs=0.01
    )


def test_revenue_per_inhabitant_of_the_five_boroughs(spark: SparkSession, trips: DataFrame) -> None:
    census = pd.read_csv(FLOW / "static_data" / "borough_population_2020.csv")
    revenue = revenue_by_borough(trips)
    result = revenue_per_inhabitant(revenue, borough_population(census, spark))
    totals = {r["borough"]: r["total_revenue"] for r in revenue.collect()}
    expected = spark.createDataFrame(
        [(b, p, totals[b] / p) for b, p in CENSUS_2020.items()],
        "borough string, population bigint, revenue_per_inhabitant double",
    )
    assert_same(
        result.select("borough", "population", "revenue_per_inhabitant"),
        expected,
        keys=["borough"],
        rel_tol=1e-12,
    )
