# Databricks notebook source
# MAGIC %md
# MAGIC # Revenue by payment type
# MAGIC Trips and revenue per payment type (card, cash, ...), from the ingest flow's clean trips.

# COMMAND ----------

from brickops.datamesh.naming import catname_from_path, dbname, tablename
from payments import revenue_by_payment

# COMMAND ----------

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='revenue', cat=catalog)}")
trips = spark.table(tablename(tbl="trips", db="ingest", cat=catalog))
(
    revenue_by_payment(trips)
    .write.mode("overwrite")
    .option("overwriteSchema", "true")
    .saveAsTable(tablename(tbl="revenue_by_payment", db="revenue", cat=catalog))
)
