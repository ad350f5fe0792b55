# Databricks notebook source
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.overwrite_schema")
spark.createDataFrame([(1, "a")], "id INT, name STRING").write.mode("overwrite").saveAsTable(
    "compat.overwrite_schema.metrics"
)

# COMMAND ----------

other = spark.createDataFrame([("cpu", 0.5), ("mem", 0.7)], "metric STRING, value DOUBLE")
(
    other.write.format("delta")
    .mode("overwrite")
    .option("overwriteSchema", "true")
    .saveAsTable("compat.overwrite_schema.metrics")
)
