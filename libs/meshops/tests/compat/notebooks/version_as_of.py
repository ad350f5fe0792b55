# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.version_as_of;
# MAGIC CREATE OR REPLACE TABLE compat.version_as_of.prices (sku STRING, price DOUBLE);
# MAGIC INSERT INTO compat.version_as_of.prices VALUES ('a', 1.0), ('b', 2.0);
# MAGIC UPDATE compat.version_as_of.prices SET price = price * 10;

# COMMAND ----------

# MAGIC %sql
# MAGIC CREATE OR REPLACE TABLE compat.version_as_of.before_update AS
# MAGIC SELECT * FROM compat.version_as_of.prices VERSION AS OF 1
