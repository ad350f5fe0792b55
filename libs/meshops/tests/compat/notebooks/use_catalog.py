# Databricks notebook source
# MAGIC %sql
# MAGIC USE CATALOG compat;
# MAGIC CREATE SCHEMA IF NOT EXISTS use_catalog;
# MAGIC USE SCHEMA use_catalog;
# MAGIC CREATE OR REPLACE TABLE colors AS SELECT * FROM VALUES ('red'), ('blue') AS v(color);

# COMMAND ----------

import json

spark.range(4).write.mode("overwrite").saveAsTable("counts")
dbutils.notebook.exit(json.dumps([spark.catalog.currentCatalog(), spark.catalog.currentDatabase()]))
