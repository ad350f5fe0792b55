# Databricks notebook source
# SOLUTION 00.1
sh("git switch -C course/student")

# COMMAND ----------

# SOLUTION 00.2
answer(
    "00",
    local_table=names(REVENUE).table("revenue_by_borough"),
    dev_job=names(REVENUE, env="dev").job,
)
