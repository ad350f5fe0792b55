# Databricks notebook source
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.cdf_py")
spark.sql(
    "CREATE OR REPLACE TABLE compat.cdf_py.items (id INT, qty INT) "
    "TBLPROPERTIES (delta.enableChangeDataFeed = true)"
)
spark.sql("INSERT INTO compat.cdf_py.items VALUES (1, 5), (2, 6)")
spark.sql("UPDATE compat.cdf_py.items SET qty = 50 WHERE id = 1")

# COMMAND ----------

changes = (
    spark.read.option("readChangeFeed", "true")
    .option("startingVersion", 1)
    .table("compat.cdf_py.items")
)
changes.select("id", "qty", "_change_type", "_commit_version").write.mode("overwrite").saveAsTable(
    "compat.cdf_py.changes"
)
