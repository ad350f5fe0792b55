# Databricks notebook source
# MAGIC %md
# MAGIC # Revenue per inhabitant
# MAGIC Taxi revenue per resident of each borough: the data product the finance domain reads.

# COMMAND ----------

from brickops.datamesh.naming import catname_from_path, tablename

from taxinyc.revenue import revenue_per_inhabitant

# COMMAND ----------

catalog = catname_from_path()
revenue = spark.table(tablename(tbl="revenue_by_borough", db="revenue", cat=catalog))
population = spark.table(tablename(tbl="borough_population", db="revenue", cat=catalog))
result = revenue_per_inhabitant(revenue, population)
# published: liquid clustering for readers' filters, change data feed for consumers
(
    result.writeTo(tablename(tbl="revenue_per_inhabitant", db="revenue", cat=catalog))
    .clusterBy("borough")
    .tableProperty("delta.enableChangeDataFeed", "true")
    .createOrReplace()
)
