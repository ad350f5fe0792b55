# Databricks notebook source
import pandas as pd

pdf = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3, 19]})
display(pdf)

# COMMAND ----------

sdf = spark.createDataFrame(pdf)
display(sdf)
sdf.where("temp > 10").display()
display(spark.sql("SELECT 'displayed-sql' AS marker"))
