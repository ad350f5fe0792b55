# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE CATALOG IF NOT EXISTS compat_sandbox COMMENT 'made by a notebook';
# MAGIC CREATE SCHEMA IF NOT EXISTS compat_sandbox.sales;
# MAGIC CREATE OR REPLACE TABLE compat_sandbox.sales.regions (id INT, region STRING);
# MAGIC INSERT INTO compat_sandbox.sales.regions VALUES (1, 'north'), (2, 'south');

# COMMAND ----------

import json

schemas = [r[0] for r in spark.sql("SHOW SCHEMAS IN compat_sandbox").collect()]
dbutils.notebook.exit(json.dumps(sorted(schemas)))
