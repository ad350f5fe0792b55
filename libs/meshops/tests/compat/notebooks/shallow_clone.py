# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.shallow_clone;
# MAGIC CREATE OR REPLACE TABLE compat.shallow_clone.source (id INT);
# MAGIC INSERT INTO compat.shallow_clone.source VALUES (1), (2), (3);

# COMMAND ----------

# MAGIC %sql
# MAGIC CREATE OR REPLACE TABLE compat.shallow_clone.dev_copy
# MAGIC   SHALLOW CLONE compat.shallow_clone.source;
# MAGIC INSERT INTO compat.shallow_clone.dev_copy VALUES (99);
