# Databricks notebook source
# MAGIC %md
# MAGIC # 03 Pipelines and quality: expectations, Auto Loader, AUTO CDC, DQX, contracts
# MAGIC
# MAGIC **Goals**: read a declarative pipeline (bronze, silver, gold) and run it as a flow; see
# MAGIC Auto Loader take only new files on each update; read the expectations' counts and the
# MAGIC quarantine; follow a dimension's history kept as SCD type 2 by AUTO CDC; check a table with
# MAGIC DQX in a job task; publish a table with a data contract.
# MAGIC
# MAGIC **Where this runs, and the one difference.** Laptop: `meshops run` builds the pipeline on
# MAGIC local Spark with open-source Spark Declarative Pipelines (the same `import dlt`, `from
# MAGIC pyspark import pipelines as dp` and SQL sources), and `sample_data(days=[n])` drops day
# MAGIC n's files into `/Volumes/samples/nyctaxi/landing/daily`. In a workspace the flow deploys
# MAGIC as a Lakeflow pipeline plus the job that updates it (`meshops deploy --env dev`); start
# MAGIC the job instead of the `meshops("run", ...)` cells; the tables and their names are the same.

# COMMAND ----------

from pathlib import Path

from meshops import quality
from meshops.course import (
    INGEST,
    REVENUE,
    TRIPSTREAM,
    answer,
    check,
    course_schema,
    meshops,
    names,
    repo,
    sample_data,
)

sample_data(days=[0])

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. The pipeline
# MAGIC `flows/prep/tripstream/deployment.yml` names a schema and three sources (`pipeline_tasks`),
# MAGIC and a job task `update` that runs the pipeline. `bronze.py` reads the landing volume with
# MAGIC Auto Loader (`cloudFiles`): each file once, columns inferred, new ones added.
# MAGIC `silver.py` types the trips with **expectations**: `expect_or_fail` stops the update,
# MAGIC `expect_or_drop` drops the row (kept in `trips_silver_quarantine`), `expect` only counts;
# MAGIC and applies the borough change feed with **AUTO CDC** as SCD type 2. `gold.sql` holds
# MAGIC materialized views, recomputed on each update.

# COMMAND ----------

for source in ("deployment.yml", "silver.py"):
    print(f"---- {source}\n" + (Path(TRIPSTREAM) / source).read_text())

# COMMAND ----------

meshops("run", TRIPSTREAM)
TABLES = names(TRIPSTREAM)
display(spark.table(TABLES.table("revenue_by_day")))

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. Increments
# MAGIC Drop the next day and update again: bronze takes only the new files (Auto Loader keeps
# MAGIC which files it read in its checkpoint), silver only the new bronze rows; gold is
# MAGIC recomputed. The run summary shows each expectation's passed and failed rows; the
# MAGIC pipeline's event log table keeps every update's progress and expectation metrics.

# COMMAND ----------

sample_data(days=[1])
meshops("run", TRIPSTREAM)
display(spark.table(TABLES.table("revenue_by_day")).orderBy("day"))
print(spark.table(TABLES.table("trips_silver_quarantine")).count(), "trips quarantined (fare < 0)")
# every table of the pipeline's schema, with the event log of its updates (event_log_...)
display(spark.sql(f"SHOW TABLES IN {TABLES.schema}"))

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. History with AUTO CDC (SCD type 2)
# MAGIC Each change of a borough's service zone closes the current row (`__END_AT` set) and opens
# MAGIC a new one; a delete closes it. Current rows are those with `__END_AT IS NULL`.

# COMMAND ----------

boroughs = spark.table(TABLES.table("boroughs"))
display(boroughs.orderBy("borough", "__START_AT"))

# COMMAND ----------

# EXERCISE 03.1
# How many borough versions are closed (history, not current)? Count them and record it.
closed_versions = ...
answer("03", closed_versions=closed_versions)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 4. Data quality in a job task: DQX
# MAGIC Outside pipelines, a task checks a DataFrame with a checks file in databricks-labs-dqx's
# MAGIC format: `quality.apply_checks(df, "checks/<name>.yml")` returns the valid rows and the
# MAGIC quarantined ones (with `_errors`/`_warnings`), and appends a row per check to the schema's
# MAGIC `dq_results`. meshops validates the file (file, line, key) before anything runs.

# COMMAND ----------

# EXERCISE 03.2
# Tips are never negative: add an error check named tip_not_negative to course/checks/trips.yml
# (DQX function is_not_less_than, arguments column and limit), then run the next cell.

# COMMAND ----------

silver = spark.table(TABLES.table("trips_silver"))
valid, quarantined = quality.apply_checks(
    silver,
    repo() / "course" / "checks" / "trips.yml",
    schema=course_schema(),
    quarantine_table="trips_quarantine",
)
print(valid.count(), "valid,", quarantined.count(), "quarantined")
display(spark.table(f"{course_schema()}.dq_results").orderBy("run_time", ascending=False))

# COMMAND ----------

# MAGIC %md
# MAGIC ## 5. A data contract for a published table
# MAGIC A domain publishes tables in `products.yml` beside `domain.yml`: description, owner,
# MAGIC freshness and the columns with their types. That is the contract: other domains declare
# MAGIC what they read (`consumes:` in their `deployment.yml`), and a local run whose table breaks
# MAGIC a declared column fails, naming the consumers it would break. `meshops contracts` shows
# MAGIC each product against its newest table: ok, breaking (what), or not built.

# COMMAND ----------

print((Path("orgs/acme/domains/transport") / "products.yml").read_text())

# COMMAND ----------

# EXERCISE 03.3
# Publish the revenue flow's revenue_by_tripmonth: add it to orgs/acme/domains/transport/
# products.yml (project taxinyc, flow revenue, a description, freshness 1d) with its columns
# trip_month (date), trip_count (bigint), total_revenue (double), avg_revenue_per_trip (double).

# COMMAND ----------

meshops("validate")
meshops("run", INGEST)
meshops("run", REVENUE, "--task", "revenue_by_tripmonth")
meshops("contracts")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Check

# COMMAND ----------

check("03")
