# Databricks notebook source
# MAGIC %md
# MAGIC Helper notebook, included by `%run ./run_helper_lib`; not a task of its own.

# COMMAND ----------

TARGET_SCHEMA = "compat.run_helper"


def with_doubled(df, column):
    return df.withColumn(f"{column}_x2", df[column] * 2)
