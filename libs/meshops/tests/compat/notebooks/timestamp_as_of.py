# Databricks notebook source
import time

spark.sql("CREATE SCHEMA IF NOT EXISTS compat.timestamp_as_of")
spark.sql("CREATE OR REPLACE TABLE compat.timestamp_as_of.stock (item STRING, qty INT)")
spark.sql("INSERT INTO compat.timestamp_as_of.stock VALUES ('bolt', 100)")
time.sleep(1.5)
spark.sql("UPDATE compat.timestamp_as_of.stock SET qty = 0")

# COMMAND ----------

first_insert = (
    spark.sql("DESCRIBE HISTORY compat.timestamp_as_of.stock")
    .where("version = 1")
    .select("timestamp")
    .collect()[0][0]
)
old = spark.sql(
    f"SELECT * FROM compat.timestamp_as_of.stock TIMESTAMP AS OF '{first_insert.isoformat()}'"
)
old.write.mode("overwrite").saveAsTable("compat.timestamp_as_of.stock_then")
