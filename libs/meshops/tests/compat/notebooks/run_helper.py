# Databricks notebook source
# MAGIC %run ./run_helper_lib

# COMMAND ----------

spark.sql(f"CREATE SCHEMA IF NOT EXISTS {TARGET_SCHEMA}")
with_doubled(spark.range(3), "id").write.mode("overwrite").saveAsTable(f"{TARGET_SCHEMA}.doubled")
