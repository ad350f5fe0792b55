# Databricks notebook source
region = getArgument("region", "emea")
batch = getArgument("batch")
dbutils.notebook.exit(f"{region}|{batch}")
