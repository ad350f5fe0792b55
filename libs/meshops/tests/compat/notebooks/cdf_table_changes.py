# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.cdf_sql;
# MAGIC CREATE OR REPLACE TABLE compat.cdf_sql.users (id INT, email STRING)
# MAGIC TBLPROPERTIES (delta.enableChangeDataFeed = true);
# MAGIC INSERT INTO compat.cdf_sql.users VALUES (1, 'a@x'), (2, 'b@x');
# MAGIC UPDATE compat.cdf_sql.users SET email = 'a@y' WHERE id = 1;
# MAGIC DELETE FROM compat.cdf_sql.users WHERE id = 2;

# COMMAND ----------

# MAGIC %sql
# MAGIC CREATE OR REPLACE TABLE compat.cdf_sql.changes AS
# MAGIC SELECT id, email, _change_type, _commit_version
# MAGIC FROM table_changes('compat.cdf_sql.users', 1)
