# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.merge_sql;
# MAGIC CREATE OR REPLACE TABLE compat.merge_sql.customers (id INT, name STRING, city STRING);
# MAGIC INSERT INTO compat.merge_sql.customers VALUES
# MAGIC   (1, 'Ann', 'Oslo'), (2, 'Bob', 'Rome'), (3, 'Cy', 'Kyiv');

# COMMAND ----------

updates = spark.createDataFrame(
    [(1, "Ann", "Paris"), (4, "Dee", "Lima")], "id INT, name STRING, city STRING"
)
updates.createOrReplaceTempView("updates")

# COMMAND ----------

# MAGIC %sql
# MAGIC MERGE INTO compat.merge_sql.customers AS t
# MAGIC USING updates AS s
# MAGIC ON t.id = s.id
# MAGIC WHEN MATCHED THEN UPDATE SET *
# MAGIC WHEN NOT MATCHED THEN INSERT *
# MAGIC WHEN NOT MATCHED BY SOURCE AND t.id = 3 THEN DELETE
