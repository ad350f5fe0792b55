# Databricks notebook source
# MAGIC %md
# MAGIC # Revenue by trip month
# MAGIC Trips and revenue per calendar month of pickup, to follow the season.

# COMMAND ----------

from brickops.datamesh.naming import catname_from_path, dbname, tablename

from taxinyc.revenue import revenue_by_tripmonth

# COMMAND ----------

catalog = catname_from_path()
db = dbname(db="revenue", cat=catalog)
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {db}")
# the ingest flow's clean trips, same env, user, branch and commit parts as this run
trips = spark.table(tablename(tbl="trips", db="ingest", cat=catalog))
result = revenue_by_tripmonth(trips)
# published: liquid clustering for readers' filters, change data feed for consumers
(
    result.writeTo(tablename(tbl="revenue_by_tripmonth", db="revenue", cat=catalog))
    .clusterBy("trip_month")
    .tableProperty("delta.enableChangeDataFeed", "true")
    .createOrReplace()
)
