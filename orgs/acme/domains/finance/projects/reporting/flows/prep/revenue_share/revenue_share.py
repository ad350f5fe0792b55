# Databricks notebook source
# MAGIC %md
# MAGIC # Revenue share
# MAGIC Each borough's share of taxi revenue, from the transport domain's published
# MAGIC `revenue_per_inhabitant`, reconciled with transport's `revenue_by_borough`.
# MAGIC The checks are written to `revenue_reconciliation`; the task fails if one fails.

# COMMAND ----------

from brickops.datamesh.naming import catname_from_path, dbname, tablename

from dataproducts import table
from reporting.revenue_share import (
    assert_reconciled,
    checks_table,
    reconciliation_checks,
    revenue_share,
)

# COMMAND ----------

# transport's data products (`consumes:` in deployment.yml), where this run resolves them:
# transport's table of the same deployment, else its prod table (or, locally, newest build)
per_inhabitant = spark.table(table("transport.taxinyc.revenue_per_inhabitant"))
by_borough = spark.table(table("transport.taxinyc.revenue_by_borough"))

catalog = catname_from_path()
db = dbname(db="revenue_share", cat=catalog)
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {db}")
shares = revenue_share(per_inhabitant)
shares.write.mode("overwrite").saveAsTable(
    tablename(tbl="revenue_share", db="revenue_share", cat=catalog)
)

# COMMAND ----------

checks = reconciliation_checks(
    spark.table(tablename(tbl="revenue_share", db="revenue_share", cat=catalog)), by_borough
)
checks_table(spark, checks).write.mode("overwrite").saveAsTable(
    tablename(tbl="revenue_reconciliation", db="revenue_share", cat=catalog)
)
assert_reconciled(checks)
