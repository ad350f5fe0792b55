# Databricks notebook source
# MAGIC %md
# MAGIC # Land zones
# MAGIC Copies the TLC taxi zone lookup kept with the flow into the `landing` volume of the
# MAGIC `training` catalog, where `load_zones` reads it.

# COMMAND ----------

# MAGIC %pip install pyyaml==6.0.2

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

import os
import shutil

import yaml

# COMMAND ----------

spark.sql("CREATE CATALOG IF NOT EXISTS training")
spark.sql("USE CATALOG training")
spark.sql("CREATE SCHEMA IF NOT EXISTS taxi_zones")
spark.sql("CREATE VOLUME IF NOT EXISTS training.taxi_zones.landing")

# COMMAND ----------

volume = "/Volumes/training/taxi_zones/landing"
shutil.copy("static_data/taxi_zone_lookup.csv", f"{volume}/taxi_zone_lookup.csv")
landed = sorted(os.listdir(volume))  # noqa: PTH208 - as in the workspace notebook
print(yaml.safe_dump({"volume": volume, "files": landed}, sort_keys=False))
assert "taxi_zone_lookup.csv" in landed, f"taxi_zone_lookup.csv not in {volume}: {landed}"
