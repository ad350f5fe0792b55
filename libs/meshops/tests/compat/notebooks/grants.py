# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.grants;
# MAGIC CREATE OR REPLACE TABLE compat.grants.reports (id INT);
# MAGIC GRANT USE SCHEMA ON SCHEMA compat.grants TO `data-readers`;
# MAGIC GRANT SELECT ON TABLE compat.grants.reports TO `data-readers`;
# MAGIC GRANT MODIFY ON TABLE compat.grants.reports TO `etl-writers`;
# MAGIC REVOKE MODIFY ON TABLE compat.grants.reports FROM `etl-writers`;

# COMMAND ----------

import json

grants = spark.sql("SHOW GRANTS ON TABLE compat.grants.reports")
display(grants)
rows = [r.asDict() for r in grants.collect()]
dbutils.notebook.exit(json.dumps(rows))
