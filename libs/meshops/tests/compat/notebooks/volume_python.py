# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.volume_python;
# MAGIC CREATE VOLUME IF NOT EXISTS compat.volume_python.landing;

# COMMAND ----------

import os
import shutil

import pandas as pd

landing = "/Volumes/compat/volume_python/landing"
os.makedirs(f"{landing}/raw", exist_ok=True)
shutil.copy("static_data/zones.csv", f"{landing}/raw/zones.csv")
pd.DataFrame({"zone_id": [4], "borough": ["Bronx"]}).to_csv(
    f"{landing}/raw/more_zones.csv", index=False
)
print(sorted(os.listdir(f"{landing}/raw")))

# COMMAND ----------

zones = spark.read.option("header", "true").csv(f"{landing}/raw/")
zones.write.mode("overwrite").saveAsTable("compat.volume_python.zones")

# COMMAND ----------

with open(f"{landing}/listing.txt", "w") as f:
    f.write("\n".join(sorted(os.listdir(f"{landing}/raw"))))
