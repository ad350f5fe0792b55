# Databricks notebook source
# MAGIC %sh
# MAGIC mkdir -p out
# MAGIC echo "from-sh $(ls static_data)" > out/sh.txt
# MAGIC cat out/sh.txt

# COMMAND ----------

with open("out/sh.txt") as f:
    dbutils.notebook.exit(f.read().strip())
