# Databricks notebook source
# MAGIC %md
# MAGIC # 04 Machine learning: tracking, champion and challenger, inference, serving, drift
# MAGIC
# MAGIC **Goals**: run the ML flow `taximodel` (a tip model of the trips); read its MLflow runs
# MAGIC (parameters, metrics, tags); see the registry's versions with the aliases `champion` and
# MAGIC `challenger`; train a challenger and see validation decide whether it is promoted; score
# MAGIC trips in batch with the champion, serve it, and read the drift the monitoring task writes.
# MAGIC
# MAGIC **Where this runs, and the one difference.** Laptop: MLflow's tracking and registry are a
# MAGIC SQLite file under `.meshops/` (the lesson's cells and the flow's tasks share it), and
# MAGIC `meshops serve` serves the champion with MLflow's own server on 127.0.0.1. In a workspace
# MAGIC the registry is Unity Catalog (`databricks-uc`, the same three-level model name), runs go to
# MAGIC the workspace's tracking server, and serving is a Model Serving endpoint on the champion
# MAGIC alias instead of the `serve` cell. The flow's code is the same in both.

# COMMAND ----------

from meshops.course import TAXIMODEL, answer, check, meshops, model_name, names, sample_data

sample_data()
MODEL = model_name(TAXIMODEL)
print("registered model:", MODEL)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. The ML flow
# MAGIC `flows/ml/taximodel`: `training` (scikit-learn gradient boosting, tracked in MLflow,
# MAGIC registered as a new version with alias `challenger`), `validation` (the challenger's
# MAGIC held-out RMSE against the champion's: promoted when better by `promotion_margin`; the
# MAGIC first version becomes champion), `batch_inference` (every trip scored with
# MAGIC `models:/...@champion`),
# MAGIC `monitoring` (prediction distribution and a PSI per feature: drift). The model's name is
# MAGIC `<catalog>.<flow schema>.taxinyc_taximodel`, so every branch has its own model.

# COMMAND ----------

meshops("run", TAXIMODEL)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. Tracking: what each training run recorded

# COMMAND ----------

import mlflow
from mlflow import MlflowClient

client = MlflowClient()
runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"])
shown = [c for c in runs.columns if c.startswith(("params.learning_rate", "metrics.", "tags.git"))]
display(runs[["run_id", *shown]].head())

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. A challenger
# MAGIC Hyper-parameters are job parameters (`deployment.yml`'s `parameters:`); `--param` overrides
# MAGIC them for a run, as "Run now with different parameters" does for a job.

# COMMAND ----------

# EXERCISE 04.1
# Train a challenger with learning_rate 0.2 and let validation decide: run the flow's
# training and validation tasks with meshops("run", ...) and --param / --task.

# COMMAND ----------

for version in client.search_model_versions(f"name = '{MODEL}'"):
    print(f"version {version.version}: run {version.run_id}, tags {version.tags}")
print("aliases:", client.get_registered_model(MODEL).aliases)
display(spark.table(names(TAXIMODEL).table("validation")))

# COMMAND ----------

# EXERCISE 04.2
# Which version is champion now? Ask the registry (MlflowClient's get_model_version_by_alias)
# and record it.
champion_version = ...
answer("04", champion_version=champion_version)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 4. Batch inference, serving, drift
# MAGIC `predictions` carries the model version of every score, so a table always says which
# MAGIC model made it. `meshops serve --check` starts MLflow's scoring server on the champion,
# MAGIC posts the model's input example and stops. `monitoring` compares the distribution of each
# MAGIC feature at scoring time with training time (PSI > 0.2 is usually called drift).

# COMMAND ----------

predictions = spark.table(names(TAXIMODEL).table("predictions"))
display(predictions.groupBy("model_version").count())
meshops("serve", TAXIMODEL, "--check")
display(spark.table(names(TAXIMODEL).table("monitoring")))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Check

# COMMAND ----------

check("04")
