# Databricks notebook source
# MAGIC %md
# MAGIC # Batch inference
# MAGIC Scores every trip of `samples.nyctaxi.trips` with the `champion` (loaded with
# MAGIC `mlflow.pyfunc.spark_udf`) into the table `predictions`, with the model version per row.

# COMMAND ----------

from taximl.names import flow_names
from taximl.registry import configure_registry
from taximl.tasks import batch_inference_task

# COMMAND ----------

configure_registry()
names = flow_names("taximodel")
batch_inference_task(
    spark,
    trips_table="samples.nyctaxi.trips",
    predictions_table=names.table("predictions"),
    model_name=names.model,
)
