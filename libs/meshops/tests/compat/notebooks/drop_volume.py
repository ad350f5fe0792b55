# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.drop_volume;
# MAGIC CREATE VOLUME IF NOT EXISTS compat.drop_volume.scratch;
# MAGIC CREATE VOLUME IF NOT EXISTS compat.drop_volume.keep;

# COMMAND ----------

dbutils.fs.put("/Volumes/compat/drop_volume/scratch/tmp.txt", "temporary", True)

# COMMAND ----------

# MAGIC %sql
# MAGIC DROP VOLUME IF EXISTS compat.drop_volume.scratch

# COMMAND ----------

import json

volumes = [r["volumeName"] for r in spark.sql("SHOW VOLUMES IN compat.drop_volume").collect()]
detail = spark.sql("DESCRIBE VOLUME compat.drop_volume.keep").collect()[0].asDict()
dbutils.notebook.exit(json.dumps({"volumes": volumes, "keep": detail.get("name")}))
