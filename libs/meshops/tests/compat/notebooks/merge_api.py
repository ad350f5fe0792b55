# Databricks notebook source
from delta.tables import DeltaTable

spark.sql("CREATE SCHEMA IF NOT EXISTS compat.merge_api")
spark.createDataFrame([(1, 10.0), (2, 20.0)], "id INT, amount DOUBLE").write.mode(
    "overwrite"
).saveAsTable("compat.merge_api.balances")

# COMMAND ----------

changes = spark.createDataFrame([(2, 25.0), (3, 30.0)], "id INT, amount DOUBLE")
target = DeltaTable.forName(spark, "compat.merge_api.balances")
(
    target.alias("t")
    .merge(changes.alias("s"), "t.id = s.id")
    .whenMatchedUpdate(set={"amount": "t.amount + s.amount"})
    .whenNotMatchedInsertAll()
    .execute()
)
