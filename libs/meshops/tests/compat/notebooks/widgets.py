# Databricks notebook source
dbutils.widgets.text("rows", "3", "Rows")
dbutils.widgets.dropdown("mode", "overwrite", ["append", "overwrite"], "Write mode")
dbutils.widgets.text("label", "default-label")

# COMMAND ----------

rows = int(dbutils.widgets.get("rows"))
mode = dbutils.widgets.get("mode")
label = dbutils.widgets.get("label")
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.widgets")
spark.range(rows).selectExpr("id", f"'{label}' AS label").write.mode(mode).saveAsTable(
    "compat.widgets.generated"
)
dbutils.notebook.exit(f"{rows}|{mode}|{label}")
