# Databricks notebook source
# MAGIC %md
# MAGIC # Silver: typed, checked trips and the borough dimension with its history
# MAGIC Expectations: a trip without an id stops the update; a negative fare (a voided trip) is
# MAGIC dropped (and kept in `trips_silver_quarantine`); a trip that never moved is counted.
# MAGIC AUTO CDC applies the borough change feed as SCD type 2: every version of a borough with
# MAGIC `__START_AT`/`__END_AT`, deletes closing the current one.

# COMMAND ----------

from pyspark import pipelines as dp
from pyspark.sql import functions as F


@dp.table(comment="Trips with types, checked by the expectations below")
@dp.expect_or_fail("trip_id_present", "trip_id IS NOT NULL")
@dp.expect_or_drop("non_negative_fare", "fare_amount >= 0")
@dp.expect("moved", "trip_distance > 0")
def trips_silver():
    return spark.readStream.table("trips_bronze").select(
        F.col("trip_id").cast("bigint"),
        F.to_timestamp("tpep_pickup_datetime").alias("pickup_at"),
        F.to_timestamp("tpep_dropoff_datetime").alias("dropoff_at"),
        "pickup_borough",
        "dropoff_borough",
        F.col("passenger_count").cast("int"),
        F.col("trip_distance").cast("double"),
        F.col("fare_amount").cast("double"),
        F.col("tip_amount").cast("double"),
        F.col("total_amount").cast("double"),
        "payment_type",
    )


# COMMAND ----------

dp.create_streaming_table("boroughs", comment="Borough service dimension, full history (SCD 2)")

dp.create_auto_cdc_flow(
    target="boroughs",
    source="borough_changes_bronze",
    keys=["borough"],
    sequence_by=F.col("sequence"),
    apply_as_deletes=F.expr("operation = 'DELETE'"),
    except_column_list=["operation", "sequence", "_ingested_at", "_rescued_data"],
    stored_as_scd_type=2,
)
