# Databricks notebook source
# MAGIC %md
# MAGIC # Load zones
# MAGIC Reads the taxi zone lookup landed in the `training` volume and publishes it:
# MAGIC - `taxi_zones_raw`: every landed file version as read, with its SHA-256 (append-only;
# MAGIC   a file already loaded is not appended again; new columns are accepted),
# MAGIC - `taxi_zones`: the lookup, one row per `location_id`, upserted with `MERGE INTO`.

# COMMAND ----------

import hashlib
from pathlib import Path

from brickops.datamesh.naming import catname_from_path, dbname, tablename
from pyspark.sql import functions as F

# COMMAND ----------

spark.sql("USE CATALOG training")
landing = "/Volumes/training/taxi_zones/landing/"
raw = (
    spark.read.format("csv")
    .option("header", "true")
    .option("inferSchema", "true")
    .load(landing)
    .withColumn("source_file", F.col("_metadata.file_name"))
)
hashes = spark.createDataFrame(
    [
        (file.name, hashlib.sha256(file.read_bytes()).hexdigest())
        for file in sorted(Path(landing).glob("*.csv"))
    ],
    "source_file string, file_sha256 string",
)
raw = raw.join(hashes, on="source_file")
display(raw)

# COMMAND ----------

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='zones', cat=catalog)}")
raw_table = tablename(tbl="taxi_zones_raw", db="zones", cat=catalog)
zones_table = tablename(tbl="taxi_zones", db="zones", cat=catalog)

# COMMAND ----------

if spark.catalog.tableExists(raw_table):
    loaded = spark.table(raw_table).select("file_sha256").distinct()
    raw = raw.join(loaded, on="file_sha256", how="left_anti")
(raw.write.format("delta").mode("append").option("mergeSchema", "true").saveAsTable(raw_table))

# COMMAND ----------

spark.sql(f"""
CREATE TABLE IF NOT EXISTS {zones_table} (
  location_id INT NOT NULL,
  borough STRING,
  zone STRING,
  service_zone STRING
)
CLUSTER BY (borough)
""")

zones = spark.read.format("csv").option("header", "true").load(landing)
zones.select(
    F.col("LocationID").cast("int").alias("location_id"),
    F.col("Borough").alias("borough"),
    F.col("Zone").alias("zone"),
    F.col("service_zone"),
).createOrReplaceTempView("landed_zones")

display(
    spark.sql(f"""
MERGE INTO {zones_table} AS t
USING landed_zones AS s
ON t.location_id = s.location_id
WHEN MATCHED AND NOT (t.borough <=> s.borough AND t.zone <=> s.zone
                      AND t.service_zone <=> s.service_zone) THEN UPDATE SET *
WHEN NOT MATCHED THEN INSERT *
WHEN NOT MATCHED BY SOURCE THEN DELETE
""")
)
