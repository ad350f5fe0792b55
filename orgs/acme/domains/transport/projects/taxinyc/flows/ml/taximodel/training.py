# Databricks notebook source
# MAGIC %md
# MAGIC # Training
# MAGIC Trains the tip model (`tip_amount` regression) on `samples.nyctaxi.trips`, saves the
# MAGIC held-out trips as the table `heldout` for validation, and registers a new model version
# MAGIC with the alias `challenger`. The MLflow run is tagged with the git commit, branch, env
# MAGIC and flow.

# COMMAND ----------

from taximl.names import flow_names
from taximl.params import TrainParams, run_tags
from taximl.registry import configure_registry
from taximl.tasks import train_task

# COMMAND ----------

configure_registry()  # Unity Catalog in a workspace; locally what the runner configures
names = flow_names("taximodel")
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {names.schema}")
train_task(
    spark,
    trips_table="samples.nyctaxi.trips",
    heldout_table=names.table("heldout"),
    model_name=names.model,
    params=TrainParams.from_widgets(dbutils.widgets.get),
    tags=run_tags(dbutils.widgets.get, flow="taximodel"),
)
