# Databricks notebook source
import json

spark.sql("CREATE SCHEMA IF NOT EXISTS compat.describe_detail")
spark.createDataFrame([("x", 1)], "part STRING, v INT").write.partitionBy("part").mode(
    "overwrite"
).saveAsTable("compat.describe_detail.facts")

# COMMAND ----------

detail = spark.sql("DESCRIBE DETAIL compat.describe_detail.facts").collect()[0]
dbutils.notebook.exit(
    json.dumps(
        {
            "format": detail["format"],
            "partitionColumns": list(detail["partitionColumns"]),
            "numFiles": detail["numFiles"],
            "name": detail["name"],
        }
    )
)
