# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='demo', cat=catalog)}")
rows = int(dbutils.widgets.get("rows"))
numbers = tablename(tbl="numbers", db="demo", cat=catalog)
spark.range(rows).write.mode("overwrite").saveAsTable(numbers)
dbutils.jobs.taskValues.set("rows", rows)
print("wrote", rows)

# COMMAND ----------

# MAGIC %sql
# MAGIC SELECT COUNT(*) AS n FROM samples.nyctaxi.trips
