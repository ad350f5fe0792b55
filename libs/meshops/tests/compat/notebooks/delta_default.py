# Databricks notebook source
# MAGIC %md
# MAGIC # Delta is the default format: saveAsTable without format, CTAS, overwrite keeps history

# COMMAND ----------

spark.sql("CREATE SCHEMA IF NOT EXISTS compat.delta_default")
spark.range(5).write.mode("overwrite").saveAsTable("compat.delta_default.numbers")
spark.range(10).write.mode("overwrite").saveAsTable("compat.delta_default.numbers")

# COMMAND ----------

# MAGIC %sql
# MAGIC CREATE OR REPLACE TABLE compat.delta_default.evens AS
# MAGIC SELECT id FROM compat.delta_default.numbers WHERE id % 2 = 0
