# Databricks notebook source
# MAGIC %md
# MAGIC # Load trips
# MAGIC Cleans the landed taxi trip files (parquet) into `samples.nyctaxi.trips`, the table
# MAGIC every taxinyc flow reads, under the same name as Databricks' built-in sample.

# COMMAND ----------

from taxinyc.ingest import clean_trips

# COMMAND ----------

dbutils.widgets.text("landing_path", "/Volumes/samples/nyctaxi/landing/trips")
landing_path = dbutils.widgets.get("landing_path")

spark.sql("CREATE SCHEMA IF NOT EXISTS samples.nyctaxi")
raw = spark.read.parquet(landing_path)
trips = clean_trips(raw)
trips.write.mode("overwrite").saveAsTable("samples.nyctaxi.trips")
