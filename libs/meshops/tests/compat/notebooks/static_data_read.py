# Databricks notebook source
import pandas as pd

zones = pd.read_csv("static_data/zones.csv")
spark.sql("CREATE SCHEMA IF NOT EXISTS compat.static_data")
spark.createDataFrame(zones).write.mode("overwrite").saveAsTable("compat.static_data.zones")
