# Databricks notebook source
# MAGIC %md
# MAGIC # Borough population
# MAGIC The 2020 census population of the five boroughs (a static file kept with the flow),
# MAGIC checked and published as a table for the per-inhabitant figures.

# COMMAND ----------

import pandas as pd
from brickops.datamesh.naming import catname_from_path, dbname, tablename

from taxinyc.revenue import borough_population

# COMMAND ----------

catalog = catname_from_path()
db = dbname(db="revenue", cat=catalog)
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {db}")
census = pd.read_csv("static_data/borough_population_2020.csv")
result = borough_population(census, spark)
# published: liquid clustering for readers' filters, change data feed for consumers
(
    result.writeTo(tablename(tbl="borough_population", db="revenue", cat=catalog))
    .clusterBy("borough")
    .tableProperty("delta.enableChangeDataFeed", "true")
    .createOrReplace()
)
