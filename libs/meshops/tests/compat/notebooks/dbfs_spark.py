# Databricks notebook source
spark.range(7).write.mode("overwrite").parquet("dbfs:/tmp/compat/dbfs_spark/ids")
dbutils.fs.put("dbfs:/tmp/compat/dbfs_spark/note.txt", "hello dbfs", True)

# COMMAND ----------

import json

back = spark.read.parquet("dbfs:/tmp/compat/dbfs_spark/ids")
names = sorted(f.name for f in dbutils.fs.ls("dbfs:/tmp/compat/dbfs_spark/"))
dbutils.notebook.exit(
    json.dumps(
        {
            "rows": back.count(),
            "names": names,
            "head": dbutils.fs.head("dbfs:/tmp/compat/dbfs_spark/note.txt"),
        }
    )
)
