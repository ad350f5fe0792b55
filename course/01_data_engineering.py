# Databricks notebook source
# MAGIC %md
# MAGIC # 01 Data engineering: trips, three-level names, Delta, volumes
# MAGIC
# MAGIC **Goals**: explore the sample trips; address any table as `catalog.schema.table`; use what
# MAGIC Delta gives every table: MERGE upserts, history and time travel, OPTIMIZE with ZORDER,
# MAGIC liquid clustering, the change data feed; keep files in a volume.
# MAGIC
# MAGIC **Where this runs.** Laptop: `meshops course run 01`, then `meshops course check 01`; the
# MAGIC local engine runs Delta Lake with three-level names and volumes under `.meshops/`. In a
# MAGIC workspace: the same cells on a cluster; `sample_data()` does nothing there, because
# MAGIC `samples.nyctaxi.trips` is provided by the workspace (the mesh expects taxigen's shape:
# MAGIC an admin loads it once with `tools/taxigen.py`). You need `CREATE SCHEMA` on
# MAGIC `acme_transport_taxinyc` for your course schema.

# COMMAND ----------

from meshops.course import answer, check, course_schema, sample_data

sample_data()  # locally: 2,000 generated trips in samples.nyctaxi.trips and the landing volume

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. Explore the sample trips
# MAGIC Unity Catalog has three levels: a **catalog** (`samples`, or a domain's
# MAGIC `acme_transport_taxinyc`) holds **schemas** (`nyctaxi`), which hold **tables** and
# MAGIC **volumes**. Always use the full three-level name: it means the same thing everywhere.

# COMMAND ----------

display(spark.sql("SHOW SCHEMAS IN samples"))
display(spark.sql("SHOW TABLES IN samples.nyctaxi"))
trips = spark.table("samples.nyctaxi.trips")
print(f"{trips.count()} trips")
display(trips.limit(5))

# COMMAND ----------

display(
    spark.sql(
        """SELECT pickup_borough, count(*) AS trips, round(avg(fare_amount), 2) AS avg_fare,
                  round(avg(tip_amount), 2) AS avg_tip
           FROM samples.nyctaxi.trips GROUP BY pickup_borough ORDER BY trips DESC"""
    )
)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. A Delta table of your own
# MAGIC `samples` is a shared input: flows read it and never write it. Your course schema is
# MAGIC `acme_transport_taxinyc.course_<you>`. Every table is a Delta table: `CREATE OR REPLACE`
# MAGIC is one atomic commit that keeps history. The change data feed is switched on for it.

# COMMAND ----------

SCHEMA = course_schema()
FARES, CORRECTIONS = f"{SCHEMA}.trip_fares", f"{SCHEMA}.fare_corrections"
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
spark.sql(
    f"""CREATE OR REPLACE TABLE {FARES}
        TBLPROPERTIES (delta.enableChangeDataFeed = true)
        AS SELECT trip_id, pickup_borough, payment_type, fare_amount, tip_amount
        FROM samples.nyctaxi.trips ORDER BY trip_id LIMIT 1000"""
)
# twenty corrections: ten trips already in trip_fares (fares raised 10 %), ten new ones
spark.sql(
    f"""CREATE OR REPLACE TABLE {CORRECTIONS}
        AS SELECT trip_id, pickup_borough, payment_type, round(fare_amount * 1.1, 2) AS fare_amount,
                  tip_amount
        FROM samples.nyctaxi.trips ORDER BY trip_id LIMIT 20 OFFSET 990"""
)
print(spark.table(FARES).count(), "fares,", spark.table(CORRECTIONS).count(), "corrections")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. Upsert with MERGE
# MAGIC `MERGE INTO target USING source ON <key>` updates the rows that match and inserts the
# MAGIC others, in one transaction: the way to apply corrections or late data without duplicates
# MAGIC (the ingest flow loads trips this way, by `trip_id`).

# COMMAND ----------

# EXERCISE 01.1
# Apply fare_corrections to trip_fares with one MERGE INTO (SQL through spark.sql, or
# delta.tables.DeltaTable.forName(spark, FARES).merge(...)): matched trips take the corrected
# row, new trips are inserted.
...

# COMMAND ----------

# MAGIC %md
# MAGIC ## 4. History and time travel
# MAGIC Every commit is a version. `DESCRIBE HISTORY` lists them; `VERSION AS OF n` reads the table
# MAGIC as it was (also `spark.read.option("versionAsOf", n).table(...)`); `RESTORE` goes back.

# COMMAND ----------

history = spark.sql(f"DESCRIBE HISTORY {FARES}")
display(history.select("version", "operation"))
latest = history.agg({"version": "max"}).first()[0]
previous = max(latest - 1, 0)
before = spark.read.option("versionAsOf", previous).table(FARES)
print(f"version {previous}: {before.count()} rows; version {latest}: {spark.table(FARES).count()}")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 5. The change data feed
# MAGIC With `delta.enableChangeDataFeed`, Delta keeps row-level changes: `table_changes(name,
# MAGIC from, to)` returns each changed row with `_change_type` (`insert`, `delete`,
# MAGIC `update_preimage`, `update_postimage`) and `_commit_version`. Consumers read only what
# MAGIC changed since the version they last saw.

# COMMAND ----------

# EXERCISE 01.2
# Count the rows your MERGE inserted or updated (update_postimage and insert) from the change
# data feed of trip_fares at the MERGE's version, and record the count.
changed_rows = ...
answer("01", changed_rows=changed_rows)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 6. Layout: OPTIMIZE, ZORDER, liquid clustering
# MAGIC Small files make reads slow. `OPTIMIZE` compacts them; `ZORDER BY` co-locates rows with
# MAGIC close values of a column readers filter on. Liquid clustering (`CLUSTER BY`) replaces
# MAGIC partitioning and ZORDER: the table keeps its clustering columns and `OPTIMIZE` applies
# MAGIC them; they can change later without rewriting the table. The revenue flow's published
# MAGIC tables are clustered by `borough`.

# COMMAND ----------

display(spark.sql(f"OPTIMIZE {FARES} ZORDER BY (pickup_borough)"))
spark.sql(
    f"""CREATE OR REPLACE TABLE {SCHEMA}.trips_clustered CLUSTER BY (pickup_borough)
        AS SELECT * FROM samples.nyctaxi.trips"""
)
spark.sql(f"OPTIMIZE {SCHEMA}.trips_clustered")
detail = spark.sql(f"DESCRIBE DETAIL {SCHEMA}.trips_clustered").first()
print("clustering columns:", detail["clusteringColumns"], "files:", detail["numFiles"])

# COMMAND ----------

# MAGIC %md
# MAGIC ## 7. Volumes: files under governance
# MAGIC A volume is a folder with a three-level name, `/Volumes/<catalog>/<schema>/<volume>/...`:
# MAGIC landing files, exports, models. Spark, `dbutils.fs` and Python's file APIs read it.
# MAGIC The ingest flow reads the landed trips from `/Volumes/samples/nyctaxi/landing/trips`.

# COMMAND ----------

spark.sql(f"CREATE VOLUME IF NOT EXISTS {SCHEMA}.exports")
catalog, schema = SCHEMA.split(".")
export = f"/Volumes/{catalog}/{schema}/exports/fares_by_borough"
(
    spark.table(FARES)
    .groupBy("pickup_borough")
    .sum("fare_amount")
    .write.mode("overwrite")
    .option("header", True)
    .csv(export)
)
print([f.name for f in dbutils.fs.ls(export) if f.name.endswith(".csv")])
print(spark.read.option("header", True).csv(export).count(), "boroughs exported")
print([f.name for f in dbutils.fs.ls("/Volumes/samples/nyctaxi/landing/trips")][:3])

# COMMAND ----------

# MAGIC %md
# MAGIC ## Check

# COMMAND ----------

check("01")
