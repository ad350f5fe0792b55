# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.cluster_by;
# MAGIC CREATE OR REPLACE TABLE compat.cluster_by.trips (id BIGINT, zone STRING) CLUSTER BY (zone);
# MAGIC INSERT INTO compat.cluster_by.trips VALUES (1, 'a'), (2, 'b')

# COMMAND ----------

df = spark.range(6).selectExpr("id", "CAST(id % 3 AS STRING) AS zone")
df.write.clusterBy("zone").mode("overwrite").saveAsTable("compat.cluster_by.trips_py")
