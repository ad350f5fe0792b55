# Databricks notebook source
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.vacuum")
for n in (3, 4, 5):
    spark.range(n).write.mode("overwrite").saveAsTable("compat.vacuum.snapshots")

# COMMAND ----------

spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")

# COMMAND ----------

# MAGIC %sql
# MAGIC VACUUM compat.vacuum.snapshots RETAIN 0 HOURS
