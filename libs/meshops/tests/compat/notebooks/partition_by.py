# Databricks notebook source
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.partition_by")
sales = spark.createDataFrame(
    [("NO", 1, 10), ("NO", 2, 20), ("IT", 3, 30)], "country STRING, id INT, amount INT"
)
sales.write.partitionBy("country").mode("overwrite").saveAsTable("compat.partition_by.sales")

# COMMAND ----------

# MAGIC %sql
# MAGIC CREATE OR REPLACE TABLE compat.partition_by.sales_sql (id INT, day DATE)
# MAGIC PARTITIONED BY (day);
# MAGIC INSERT INTO compat.partition_by.sales_sql VALUES
# MAGIC   (1, DATE'2024-01-01'), (2, DATE'2024-01-02')
