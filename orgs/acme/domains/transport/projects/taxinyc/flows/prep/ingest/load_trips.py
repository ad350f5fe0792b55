# Databricks notebook source
# MAGIC %md
# MAGIC # Load trips
# MAGIC Cleans the landed taxi trip files (parquet) and upserts them by `trip_id` into
# MAGIC `samples.nyctaxi.trips`, the table every taxinyc flow reads, under the same name as
# MAGIC Databricks' built-in sample. Loading the same files again changes nothing.

# COMMAND ----------

from taxinyc.ingest import TRIPS_SCHEMA, clean_trips, merge_trips_sql

# COMMAND ----------

dbutils.widgets.text("landing_path", "/Volumes/samples/nyctaxi/landing/trips")
landing_path = dbutils.widgets.get("landing_path")

spark.sql("CREATE SCHEMA IF NOT EXISTS samples.nyctaxi")
spark.sql(f"CREATE TABLE IF NOT EXISTS samples.nyctaxi.trips ({TRIPS_SCHEMA.toDDL()})")

# COMMAND ----------

raw = spark.read.parquet(landing_path)
clean_trips(raw).createOrReplaceTempView("landed_trips")
display(spark.sql(merge_trips_sql("samples.nyctaxi.trips", "landed_trips")))
