# Databricks notebook source
# MAGIC %md
# MAGIC # Bronze: the daily drops, as landed
# MAGIC Auto Loader picks up each new JSON file in the landing volume once: the trips and the
# MAGIC change feed of the borough service dimension. Columns are inferred and new ones added
# MAGIC as they appear; what does not fit the schema is kept in `_rescued_data`.

# COMMAND ----------

import dlt
from pyspark.sql import functions as F

LANDING = spark.conf.get("tripstream.landing")


def landed(folder: str):
    return (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "json")
        .option("cloudFiles.inferColumnTypes", "true")
        .option("cloudFiles.schemaEvolutionMode", "addNewColumns")
        .load(f"{LANDING}/{folder}")
        .withColumn("_ingested_at", F.current_timestamp())
    )


# COMMAND ----------


@dlt.table(comment="Taxi trips as dropped each day, one row per trip")
def trips_bronze():
    return landed("trips")


@dlt.table(comment="Changes to the borough service dimension (upserts and deletes)")
def borough_changes_bronze():
    return landed("borough_changes")
