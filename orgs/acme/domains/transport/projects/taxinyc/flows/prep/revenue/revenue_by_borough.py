# Databricks notebook source
# MAGIC %md
# MAGIC # Revenue by borough
# MAGIC Trips, fares, tips and revenue per pickup borough: where the cabs earn their money.

# COMMAND ----------

from brickops.datamesh.naming import catname_from_path, dbname, tablename

from taxinyc.revenue import revenue_by_borough

# COMMAND ----------

catalog = catname_from_path()
db = dbname(db="revenue", cat=catalog)
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {db}")
# the ingest flow's clean trips, same env, user, branch and commit parts as this run
trips = spark.table(tablename(tbl="trips", db="ingest", cat=catalog))
result = revenue_by_borough(trips)
# published: liquid clustering for readers' filters, change data feed for consumers
(
    result.writeTo(tablename(tbl="revenue_by_borough", db="revenue", cat=catalog))
    .clusterBy("borough")
    .tableProperty("delta.enableChangeDataFeed", "true")
    .createOrReplace()
)
