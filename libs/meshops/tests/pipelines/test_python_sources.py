"""Python sources in both forms teams write them, as Databricks-source notebooks:
`from pyspark import pipelines as dp` (Spark Declarative Pipelines) and `import dlt`."""

from __future__ import annotations

import sys

import pytest

from meshops.pipelines.errors import PipelineError

pytestmark = pytest.mark.spark

DP_SOURCE = """
# Databricks notebook source
# MAGIC %md
# MAGIC # Orders, in the pyspark.pipelines form

# COMMAND ----------

from pyspark import pipelines as dp
from pyspark.sql import functions as F

# COMMAND ----------


@dp.materialized_view(comment="orders per customer", table_properties={"quality": "gold"})
def customer_totals():
    # reads a dataset declared further down: the update builds that one first
    return spark.read.table("big_orders").groupBy("customer").agg(F.sum("amount").alias("total"))


@dp.temporary_view
def orders():
    return spark.table("orders_raw")  # an input table of the schema, not a dataset


@dp.expect("positive", "amount > 0")  # above the dataset's decorator works too
@dp.materialized_view(name="big_orders")
def big():
    threshold = float(spark.conf.get("orders.threshold"))  # the pipeline configuration
    return spark.read.table("orders").where(F.col("amount") >= threshold)

# COMMAND ----------

# MAGIC %sql
# MAGIC CREATE OR REFRESH MATERIALIZED VIEW ann_orders AS
# MAGIC SELECT id FROM big_orders WHERE customer = 'ann'
"""

DLT_SOURCE = """
# Databricks notebook source
import dlt
from pyspark.sql import functions as F


@dlt.table
@dlt.expect_or_drop("has_customer", "customer IS NOT NULL")
def report():
    return dlt.read("customer_totals").withColumn("label", F.upper("customer"))
"""


def test_dp_and_dlt_sources_build_in_dependency_order(bed) -> None:
    bed.write(
        "orders_raw",
        [(1, "ann", 10.0), (2, "bob", 5.0), (3, "ann", 30.0), (4, None, 50.0), (5, "bob", -1.0)],
        "id INT, customer STRING, amount DOUBLE",
    )
    result = bed.run(
        bed.source("report.py", DLT_SOURCE),
        bed.source("orders.py", DP_SOURCE),
        **{"orders.threshold": "-5"},
    )

    assert bed.rows("big_orders", "id") == [(1,), (2,), (3,), (4,), (5,)]
    assert bed.rows("customer_totals") == [("ann", 40.0), ("bob", 4.0), (None, 50.0)]
    assert bed.rows("report") == [("ann", 40.0, "ANN"), ("bob", 4.0, "BOB")]
    assert bed.rows("ann_orders") == [(1,), (3,)]  # from the notebook's %sql cell
    # a temporary view is no table
    assert not bed.spark.catalog.tableExists(bed.table("orders"))
    detail = bed.spark.sql(f"DESCRIBE DETAIL {bed.table('customer_totals')}").first()
    assert (detail.format, detail.description) == ("delta", "orders per customer")
    assert detail.properties["quality"] == "gold"

    positive = result.expectation("big_orders", "positive")
    assert (positive.action, positive.passed_records, positive.failed_records) == ("warn", 4, 1)
    has_customer = result.expectation("report", "has_customer")
    assert (has_customer.passed_records, has_customer.failed_records) == (2, 1)
    assert has_customer.dropped_records == 1
    assert {d.name: d.rows_written for d in result.datasets} == {
        "report": 2,
        "customer_totals": 3,
        "big_orders": 5,
        "orders": None,
        "ann_orders": 2,
    }
    assert "dlt" not in sys.modules  # only while the sources load


def test_a_cycle_between_datasets_is_named(bed) -> None:
    source = bed.source(
        "cycle.py",
        """
        import dlt

        @dlt.table
        def a():
            return dlt.read("b")

        @dlt.table
        def b():
            return spark.read.table("LIVE.a")
        """,
    )
    with pytest.raises(PipelineError, match=r"cycle: a -> b -> a"):
        bed.run(source)
