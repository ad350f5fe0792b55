# Databricks notebook source
import os

dbutils.fs.put("dbfs:/FileStore/compat/greeting.txt", "hi from dbutils", True)
with open("/dbfs/FileStore/compat/greeting.txt") as f:
    greeting = f.read()

# COMMAND ----------

os.makedirs("/dbfs/FileStore/compat/csv", exist_ok=True)
with open("/dbfs/FileStore/compat/csv/rows.csv", "w") as f:
    f.write("a,b\n1,2\n3,4\n")
rows = spark.read.option("header", True).csv("dbfs:/FileStore/compat/csv/rows.csv").count()
dbutils.notebook.exit(f"{greeting}|{rows}")
