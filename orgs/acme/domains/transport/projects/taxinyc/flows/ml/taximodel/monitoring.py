# Databricks notebook source
# MAGIC %md
# MAGIC # Monitoring
# MAGIC Appends to the table `monitoring` the distribution of the predictions and, per feature,
# MAGIC the population stability index between the trips the scoring version was trained on and
# MAGIC the trips it scored (below 0.1 stable, below 0.25 moderate, above that drift).

# COMMAND ----------

from taximl.names import flow_names
from taximl.registry import configure_registry
from taximl.tasks import monitoring_task

# COMMAND ----------

configure_registry()
names = flow_names("taximodel")
monitoring_task(
    spark,
    predictions_table=names.table("predictions"),
    monitoring_table=names.table("monitoring"),
    model_name=names.model,
).display()
