# Databricks notebook source
import mlflow

mlflow.set_experiment("/Shared/meshops-test")
with mlflow.start_run() as run:
    mlflow.log_text("hello", "hello.txt")
dbutils.jobs.taskValues.set("artifact_uri", run.info.artifact_uri)
