# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname

catalog = catname_from_path()
dbutils.jobs.taskValues.set("names", [catalog, dbname(db="demo", cat=catalog)])
dbutils.notebook.exit(catalog)  # the task result a job run shows
