# Databricks notebook source
# MAGIC %md
# MAGIC # Explicit Delta format: DataFrameWriter and SQL `USING DELTA`

# COMMAND ----------

spark.sql("CREATE SCHEMA IF NOT EXISTS compat.delta_format")
df = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "id INT, name STRING")
df.write.format("delta").mode("overwrite").saveAsTable("compat.delta_format.people")

# COMMAND ----------

# MAGIC %sql
# MAGIC CREATE OR REPLACE TABLE compat.delta_format.events (id BIGINT, kind STRING) USING DELTA;
# MAGIC INSERT INTO compat.delta_format.events VALUES (1, 'open'), (2, 'close');
