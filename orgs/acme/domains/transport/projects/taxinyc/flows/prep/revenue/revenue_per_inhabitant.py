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
result.write.mode("overwrite").saveAsTable(
    tablename(tbl="revenue_per_inhabitant", db="revenue", cat=catalog)
)
