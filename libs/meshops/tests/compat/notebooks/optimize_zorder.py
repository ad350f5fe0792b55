# Databricks notebook source
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.optimize_zorder")
spark.range(0, 10).write.mode("overwrite").saveAsTable("compat.optimize_zorder.points")
for start in (10, 20, 30):
    spark.range(start, start + 10).write.mode("append").saveAsTable("compat.optimize_zorder.points")

# COMMAND ----------

# MAGIC %sql
# MAGIC OPTIMIZE compat.optimize_zorder.points ZORDER BY (id)
