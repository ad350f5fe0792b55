# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.check_constraint;
# MAGIC CREATE OR REPLACE TABLE compat.check_constraint.payments (id INT, amount DOUBLE);
# MAGIC INSERT INTO compat.check_constraint.payments VALUES (1, 10.0);
# MAGIC ALTER TABLE compat.check_constraint.payments
# MAGIC   ADD CONSTRAINT positive_amount CHECK (amount > 0);

# COMMAND ----------

try:
    spark.sql("INSERT INTO compat.check_constraint.payments VALUES (2, -5.0)")
    outcome = "inserted"
except Exception as e:
    outcome = str(e)
print(outcome)
dbutils.notebook.exit(outcome)
