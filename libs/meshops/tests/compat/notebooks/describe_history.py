# Databricks notebook source
import json

spark.sql("CREATE SCHEMA IF NOT EXISTS compat.describe_history")
spark.sql("CREATE OR REPLACE TABLE compat.describe_history.log (id INT)")
spark.sql("INSERT INTO compat.describe_history.log VALUES (1), (2)")
spark.sql("DELETE FROM compat.describe_history.log WHERE id = 1")

# COMMAND ----------

history = spark.sql("DESCRIBE HISTORY compat.describe_history.log")
display(history.select("version", "operation"))
ops = [(r.version, r.operation) for r in history.orderBy("version").collect()]
dbutils.notebook.exit(json.dumps(ops))
