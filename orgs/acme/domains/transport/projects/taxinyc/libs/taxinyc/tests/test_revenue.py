"""Revenue aggregates and revenue per inhabitant, against hand-computed values."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from taxinyc.ingest import TRIPS_SCHEMA
from taxinyc.revenue import (
    borough_population,
    revenue_by_borough,
    revenue_by_tripmonth,
    revenue_per_inhabitant,
)

pytestmark = pytest.mark.spark

CENSUS = {
    "Bronx": 1_472_654,
    "Brooklyn": 2_736_074,
    "Manhattan": 1_694_251,
    "Queens": 2_405_464,
    "Staten Island": 495_747,
}


def trip(
    trip_id: int, borough: str, pickup: datetime, fare: float, tip: float, total: float
) -> tuple[object, ...]:
    dropoff = pickup + timedelta(minutes=10)
    return (trip_id, pickup, dropoff, borough, "Manhattan", 1, 2.0, fare, tip, 0.0, total, "card")


@pytest.fixture(scope="module")
def trips(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [
            trip(1, "Manhattan", datetime(2024, 1, 5, 9, 30), 7.00, 1.10, 10.10),
            trip(2, "Manhattan", datetime(2024, 1, 31, 23, 59), 15.00, 2.20, 20.20),
            trip(3, "Bronx", datetime(2024, 2, 1, 0, 0), 25.00, 1.30, 30.30),
            trip(4, "EWR", datetime(2024, 3, 10, 12, 0), 80.00, 10.00, 100.00),
            trip(5, "Unknown", datetime(2024, 3, 11, 7, 15), 1.56, 0.00, 5.56),
        ],
        TRIPS_SCHEMA,
    )


def population(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(list(CENSUS.items()), "borough string, population bigint")


def test_revenue_by_borough(spark: SparkSession, trips: DataFrame) -> None:
    expected = spark.createDataFrame(
        [
            ("Manhattan", 2, 22.00, 3.30, 30.30),
            ("Bronx", 1, 25.00, 1.30, 30.30),
            ("EWR", 1, 80.00, 10.00, 100.00),
            ("Unknown", 1, 1.56, 0.00, 5.56),
        ],
        "borough string, trip_count bigint, total_fare double, total_tips double, "
        "total_revenue double",
    )
    assertDataFrameEqual(revenue_by_borough(trips), expected, rtol=0, atol=0)


def test_revenue_by_tripmonth(spark: SparkSession, trips: DataFrame) -> None:
    expected = spark.createDataFrame(
        [
            (date(2024, 1, 1), 2, 30.30, 15.15),
            (date(2024, 2, 1), 1, 30.30, 30.30),
            (date(2024, 3, 1), 2, 105.56, 52.78),
        ],
        "trip_month date, trip_count bigint, total_revenue double, avg_revenue_per_trip double",
    )
    assertDataFrameEqual(revenue_by_tripmonth(trips), expected, rtol=0, atol=0)


def test_borough_population_from_the_csv_shape(spark: SparkSession) -> None:
    pdf = pd.DataFrame(
        {
            "borough": [" Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island"],
            "population": ["1,472,654", 2736074, 1694251, 2405464, 495747],
            "census_year": [2020] * 5,
        }
    )
    assertDataFrameEqual(borough_population(pdf, spark), population(spark))


def test_borough_population_accepts_a_spark_frame(spark: SparkSession) -> None:
    assertDataFrameEqual(borough_population(population(spark)), population(spark))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({**CENSUS, "Bronx": -1}, "population of Bronx is not a positive number"),
        ({**CENSUS, "Queens": "many"}, "population of Queens is not a positive number"),
        ({k: v for k, v in CENSUS.items() if k != "Queens"}, "expected the five boroughs"),
        ({**CENSUS, "EWR": 1}, "got Bronx, Brooklyn, EWR, Manhattan, Queens, Staten Island"),
    ],
)
def test_borough_population_rejects_bad_files(
    spark: SparkSession, rows: dict[str, object], message: str
) -> None:
    pdf = pd.DataFrame({"borough": list(rows), "population": list(rows.values())})
    with pytest.raises(ValueError, match=message):
        borough_population(pdf, spark)


def test_borough_population_rejects_duplicates_and_missing_columns(spark: SparkSession) -> None:
    twice = pd.DataFrame({"borough": ["Bronx", "Bronx"], "population": [1, 2]})
    with pytest.raises(ValueError, match="listed more than once: Bronx"):
        borough_population(twice, spark)
    with pytest.raises(ValueError, match="lacks column\\(s\\) population"):
        borough_population(pd.DataFrame({"borough": ["Bronx"]}), spark)


def test_revenue_per_inhabitant_covers_all_boroughs(spark: SparkSession, trips: DataFrame) -> None:
    result = revenue_per_inhabitant(revenue_by_borough(trips), population(spark))
    expected = spark.createDataFrame(
        [
            ("Bronx", 1_472_654, 1, 30.30, 30.30 / 1_472_654),
            ("Brooklyn", 2_736_074, 0, 0.0, 0.0),
            ("Manhattan", 1_694_251, 2, 30.30, 30.30 / 1_694_251),
            ("Queens", 2_405_464, 0, 0.0, 0.0),
            ("Staten Island", 495_747, 0, 0.0, 0.0),
        ],
        "borough string, population bigint, trip_count bigint, total_revenue double, "
        "revenue_per_inhabitant double",
    )
    assertDataFrameEqual(result, expected, checkRowOrder=False)
