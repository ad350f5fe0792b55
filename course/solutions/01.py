# Databricks notebook source
# SOLUTION 01.1
spark.sql(
    f"""MERGE INTO {FARES} AS t USING {CORRECTIONS} AS c ON t.trip_id = c.trip_id
        WHEN MATCHED THEN UPDATE SET *
        WHEN NOT MATCHED THEN INSERT *"""
)

# COMMAND ----------

# SOLUTION 01.2
merged = spark.sql(f"DESCRIBE HISTORY {FARES}").where("operation = 'MERGE'")
version = merged.agg({"version": "max"}).first()[0]
changed_rows = spark.sql(
    f"""SELECT count(*) FROM table_changes('{FARES}', {version}, {version})
        WHERE _change_type IN ('update_postimage', 'insert')"""
).first()[0]
answer("01", changed_rows=changed_rows)
