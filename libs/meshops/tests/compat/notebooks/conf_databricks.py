# Databricks notebook source
spark.conf.set("spark.databricks.delta.optimizeWrite.enabled", "true")
spark.conf.set("spark.databricks.delta.autoCompact.enabled", "true")
spark.conf.set("spark.databricks.io.cache.enabled", "true")
spark.conf.set("spark.sql.shuffle.partitions", "4")

# COMMAND ----------

spark.sql("CREATE SCHEMA IF NOT EXISTS compat.conf_databricks")
spark.range(3).write.mode("overwrite").saveAsTable("compat.conf_databricks.after_conf")
