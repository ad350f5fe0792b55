"""Pipeline SQL: streaming tables, constraints as expectations, views, flows, table layout,
configuration variables, quarantine; and bad statements named by file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshops.pipelines.errors import PipelineSourceError

pytestmark = pytest.mark.spark

TRIPS = """
-- Databricks notebook source
-- MAGIC %md
-- MAGIC # Trips, in pipeline SQL

-- COMMAND ----------

CREATE OR REFRESH STREAMING TABLE trips_bronze
COMMENT 'trips as they came'
AS SELECT * FROM STREAM read_files('${landing}', format => 'json');

-- COMMAND ----------

CREATE OR REFRESH STREAMING TABLE trips_silver (
  CONSTRAINT positive_fare EXPECT (fare > 0) ON VIOLATION DROP ROW,
  CONSTRAINT known_zone EXPECT (zone IS NOT NULL)
)
PARTITIONED BY (zone)
TBLPROPERTIES ('quality' = 'silver', pipelines.reset.allowed = false)
AS SELECT id, zone, fare FROM STREAM LIVE.trips_bronze;

/* a view of the pipeline only; ${min_fare} comes from the configuration */
CREATE TEMPORARY VIEW big_trips AS SELECT * FROM trips_silver WHERE fare >= ${min_fare};

CREATE OR REFRESH MATERIALIZED VIEW zone_revenue (
  zone STRING COMMENT 'pickup zone',
  revenue DOUBLE
)
CLUSTER BY (zone)
AS SELECT zone, sum(fare) AS revenue FROM big_trips GROUP BY zone;

CREATE OR REFRESH STREAMING TABLE all_trips;
CREATE FLOW silver_into_all
AS INSERT INTO all_trips BY NAME SELECT id, fare FROM STREAM(trips_silver);
"""


def test_sql_pipeline_with_constraints_views_flows_and_quarantine(bed, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    trips = [(1, "a", 12.0), (2, "a", -3.0), (3, None, 20.0), (4, "b", 5.0), (5, "b", 30.0)]
    (landing / "trips-1.json").write_text(
        "".join(json.dumps({"id": i, "zone": z, "fare": f}) + "\n" for i, z, f in trips)
    )
    result = bed.run(
        bed.source("trips.sql", TRIPS),
        landing=str(landing),
        min_fare="10",
        **{"meshops.quarantine": "true"},
    )

    assert bed.rows("trips_bronze", "id") == [(1,), (2,), (3,), (4,), (5,)]
    assert bed.rows("trips_silver", "id") == [(1,), (3,), (4,), (5,)]
    assert bed.rows("zone_revenue") == [("a", 12.0), ("b", 30.0), (None, 20.0)]
    assert bed.rows("all_trips") == [(1, 12.0), (3, 20.0), (4, 5.0), (5, 30.0)]
    assert bed.rows("trips_silver_quarantine", "id", "_failed_expectations") == [
        (2, ["positive_fare"])
    ]
    assert not bed.spark.catalog.tableExists(bed.table("big_trips"))

    counts = {(e.name, e.action): (e.passed_records, e.failed_records) for e in result.expectations}
    assert counts == {("positive_fare", "drop"): (4, 1), ("known_zone", "warn"): (4, 1)}
    assert result.dataset("trips_silver").quarantine_table == bed.table("trips_silver_quarantine")

    silver = bed.spark.sql(f"DESCRIBE DETAIL {bed.table('trips_silver')}").first()
    assert silver.partitionColumns == ["zone"]
    assert silver.properties["quality"] == "silver"
    assert silver.properties["pipelines.reset.allowed"] == "false"
    revenue = bed.spark.sql(f"DESCRIBE DETAIL {bed.table('zone_revenue')}").first()
    assert revenue.clusteringColumns == ["zone"]
    zone = bed.spark.table(bed.table("zone_revenue")).schema["zone"]
    assert zone.metadata.get("comment") == "pickup zone"
    bronze = bed.spark.sql(f"DESCRIBE DETAIL {bed.table('trips_bronze')}").first()
    assert bronze.description == "trips as they came"


@pytest.mark.parametrize(
    ("sql", "line", "says"),
    [
        (
            "CREATE MATERIALIZED VIEW a AS SELECT 1 AS x;\n\n"
            "CREATE OR REFRESH MATERIALIZED VIEW b (\n"
            "  CONSTRAINT c EXPECT (x > 0) ON VIOLATION QUARANTINE\n) AS SELECT * FROM a;",
            4,
            "expected DROP ROW or FAIL UPDATE after ON VIOLATION, found 'QUARANTINE'",
        ),
        ("-- no query\n\nCREATE OR REFRESH MATERIALIZED VIEW m;", 3, "needs AS <query>"),
        (
            "CREATE STREAMING TABLE t\n  LOCATION '/tmp/x' AS SELECT * FROM STREAM(s);",
            2,
            "LOCATION is not supported locally",
        ),
        (
            "AUTO CDC INTO t FROM STREAM(s) KEYS (id)\nSTORED AS SCD TYPE 2;",
            1,
            "needs SEQUENCE BY",
        ),
        ("CREATE MATERIALIZED VIEW m AS SELEC 1;", 1, "the query does not parse"),
    ],
)
def test_a_bad_statement_is_named_by_file_and_line(bed, sql: str, line: int, says: str) -> None:
    path = bed.source("bad.sql", sql)
    with pytest.raises(PipelineSourceError) as failed:
        bed.run(path)
    assert str(failed.value).startswith(f"{path}:{line}: ")
    assert says in str(failed.value)
