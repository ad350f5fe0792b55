# Databricks notebook source
sql("CREATE SCHEMA IF NOT EXISTS compat.sql_globals")
sql("CREATE OR REPLACE TABLE compat.sql_globals.t AS SELECT id FROM range(6)")

# COMMAND ----------

big = table("compat.sql_globals.t").where("id >= 3")
small = sqlContext.sql("SELECT id FROM compat.sql_globals.t WHERE id < 3")
big.union(small.where("id = 0")).write.mode("overwrite").saveAsTable("compat.sql_globals.picked")
