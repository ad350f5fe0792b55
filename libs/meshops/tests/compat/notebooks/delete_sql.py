# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.delete_sql;
# MAGIC CREATE OR REPLACE TABLE compat.delete_sql.sessions (id INT, active BOOLEAN);
# MAGIC INSERT INTO compat.delete_sql.sessions VALUES (1, true), (2, false), (3, false), (4, true);

# COMMAND ----------

# MAGIC %sql
# MAGIC DELETE FROM compat.delete_sql.sessions WHERE NOT active

# COMMAND ----------

from delta.tables import DeltaTable

DeltaTable.forName(spark, "compat.delete_sql.sessions").delete("id = 4")
