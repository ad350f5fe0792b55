# Databricks notebook source
# MAGIC %pip install pandas

# COMMAND ----------

# MAGIC %pip install -q "pyyaml>=6" requests

# COMMAND ----------

# MAGIC %pip install --upgrade pandas==2.* pyyaml==6.0.*

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import yaml

spark.sql("CREATE SCHEMA IF NOT EXISTS compat.pip_restart")
spark.createDataFrame([(yaml.safe_load("a: 1")["a"],)], "a INT").write.mode(
    "overwrite"
).saveAsTable("compat.pip_restart.parsed")
