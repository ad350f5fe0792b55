# Databricks notebook source
# MAGIC %sql
# MAGIC CREATE SCHEMA IF NOT EXISTS compat.update_sql;
# MAGIC CREATE OR REPLACE TABLE compat.update_sql.orders (id INT, status STRING, total DOUBLE);
# MAGIC INSERT INTO compat.update_sql.orders VALUES
# MAGIC   (1, 'new', 5.0), (2, 'new', 7.5), (3, 'paid', 1.0);

# COMMAND ----------

# MAGIC %sql
# MAGIC UPDATE compat.update_sql.orders SET status = 'paid', total = total * 2 WHERE status = 'new'

# COMMAND ----------

from delta.tables import DeltaTable

DeltaTable.forName(spark, "compat.update_sql.orders").update(
    condition="id = 3", set={"status": "'shipped'"}
)
