# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.restore;
# MAGIC CREATE OR REPLACE TABLE compat.restore.accounts (id INT, owner STRING);
# MAGIC INSERT INTO compat.restore.accounts VALUES (1, 'ann'), (2, 'bob');
# MAGIC DELETE FROM compat.restore.accounts;

# COMMAND ----------

# MAGIC %sql
# MAGIC RESTORE TABLE compat.restore.accounts TO VERSION AS OF 1
