# Databricks notebook source
# MAGIC %md
# MAGIC # Validation
# MAGIC Scores the `challenger` and the `champion` on the held-out trips and moves `champion` to
# MAGIC the challenger only when its RMSE is lower by at least `promotion_margin` (relative); the
# MAGIC first version becomes champion. The decision and both metrics go to an MLflow run, the
# MAGIC table `validation` and this task's output. A failing validation never moves `champion`.

# COMMAND ----------

from taximl.names import flow_names
from taximl.params import promotion_margin, run_tags
from taximl.registry import configure_registry
from taximl.tasks import validate_task

# COMMAND ----------

configure_registry()
names = flow_names("taximodel")
decision = validate_task(
    spark,
    heldout_table=names.table("heldout"),
    validation_table=names.table("validation"),
    model_name=names.model,
    margin=promotion_margin(dbutils.widgets.get),
    tags=run_tags(dbutils.widgets.get, flow="taximodel"),
)
dbutils.notebook.exit(decision.line())  # the run's result, shown on the job run page
