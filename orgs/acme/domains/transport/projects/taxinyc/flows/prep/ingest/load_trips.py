# Databricks notebook source
# MAGIC %md
# MAGIC # Load trips
# MAGIC Cleans the landed taxi trip files (parquet) and upserts them by `trip_id` into this flow's
# MAGIC own table `trips` (`<catalog>.<ingest schema>.trips`, named by brickops), which the revenue
# MAGIC flow reads. The landing files are in a volume of the shared input catalog `samples`, which
# MAGIC flows read and never write. Loading the same files again changes nothing.

# COMMAND ----------

from brickops.datamesh.naming import catname_from_path, dbname, tablename

from taxinyc.ingest import TRIPS_SCHEMA, clean_trips, merge_trips_sql

# COMMAND ----------

dbutils.widgets.text("landing_path", "/Volumes/samples/nyctaxi/landing/trips")
landing_path = dbutils.widgets.get("landing_path")

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='ingest', cat=catalog)}")
trips_table = tablename(tbl="trips", db="ingest", cat=catalog)
spark.sql(f"CREATE TABLE IF NOT EXISTS {trips_table} ({TRIPS_SCHEMA.toDDL()})")

# COMMAND ----------

raw = spark.read.parquet(landing_path)
clean_trips(raw).createOrReplaceTempView("landed_trips")
display(spark.sql(merge_trips_sql(trips_table, "landed_trips")))
