"""revenue_by_payment: one row per payment type, trips and revenue add up."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

FLOW = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("payments", FLOW / "payments.py")
assert _spec is not None and _spec.loader is not None
payments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(payments)


def test_one_row_per_payment_type(spark: SparkSession) -> None:
    trips = spark.createDataFrame(
        [("card", 10.0, 2.0), ("card", 20.5, 3.0), ("cash", 7.25, 0.0)],
        "payment_type string, total_amount double, tip_amount double",
    )
    rows = {r["payment_type"]: r for r in payments.revenue_by_payment(trips).collect()}
    assert set(rows) == {"card", "cash"}
    assert rows["card"]["trip_count"] == 2
    assert rows["card"]["total_revenue"] == pytest.approx(30.5)
    assert rows["cash"]["total_revenue"] == pytest.approx(7.25)
