# Databricks notebook source
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.merge_schema")
spark.createDataFrame([(1, "a")], "id INT, name STRING").write.mode("overwrite").saveAsTable(
    "compat.merge_schema.profiles"
)

# COMMAND ----------

wider = spark.createDataFrame([(2, "b", "NO")], "id INT, name STRING, country STRING")
wider.write.option("mergeSchema", "true").mode("append").saveAsTable("compat.merge_schema.profiles")
