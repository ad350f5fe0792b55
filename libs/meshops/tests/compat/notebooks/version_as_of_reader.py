# Databricks notebook source
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.version_reader")
spark.range(3).write.mode("overwrite").saveAsTable("compat.version_reader.ids")
spark.range(100).write.mode("overwrite").saveAsTable("compat.version_reader.ids")

# COMMAND ----------

v0 = spark.read.option("versionAsOf", 0).table("compat.version_reader.ids")
v0.write.mode("overwrite").saveAsTable("compat.version_reader.ids_v0")

# COMMAND ----------

location = spark.sql("DESCRIBE DETAIL compat.version_reader.ids").collect()[0]["location"]
by_path = spark.read.format("delta").option("versionAsOf", 0).load(location)
dbutils.jobs.taskValues.set("rows_by_path", by_path.count())
