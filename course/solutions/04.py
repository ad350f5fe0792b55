# Databricks notebook source
# SOLUTION 04.1
meshops(
    "run", TAXIMODEL, "--param", "learning_rate=0.2", "--task", "training", "--task", "validation"
)

# COMMAND ----------

# SOLUTION 04.2
champion_version = client.get_model_version_by_alias(MODEL, "champion").version
answer("04", champion_version=champion_version)
