# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, tablename

source = tablename(tbl="numbers", db="demo", cat=catname_from_path())
total = spark.table(source).groupBy().sum("id").collect()[0][0]
spark.createDataFrame([(total,)], "total long").write.mode("overwrite").saveAsTable(
    tablename(tbl="total", db="demo", cat=catname_from_path())
)
assert dbutils.jobs.taskValues.get(taskKey="write", key="rows") == 5
