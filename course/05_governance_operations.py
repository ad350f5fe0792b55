# Databricks notebook source
# MAGIC %md
# MAGIC # 05 Governance and operations: owners, grants, data products, runs, payloads
# MAGIC
# MAGIC **Goals**: see who owns what (`domain.yml`, CODEOWNERS) and the Unity Catalog grants that
# MAGIC follow from it; give a group read access; follow a cross-domain data product from the
# MAGIC transport domain to finance; read the run history, the lineage and the exact Jobs API
# MAGIC payload of a flow; clean up stale deployments.
# MAGIC
# MAGIC **Where this runs, and the one difference.** Laptop: grants are planned and recorded in
# MAGIC `.meshops/` (shown by `meshops grants`), never enforced, and `meshops cleanup` surveys the
# MAGIC local job registry. In a workspace the same `domain.yml` becomes owners and grants in
# MAGIC Unity Catalog on `meshops deploy`, and cleanup takes `--target databricks`.

# COMMAND ----------


import json  # noqa: F401 - for exercise 05.2
import sys  # noqa: F401 - for exercise 05.2

from meshops.course import (
    INGEST,
    REVENUE,
    REVENUE_SHARE,
    answer,
    check,
    meshops,
    names,
    sample_data,
    sh,
)

sample_data()

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. Domains own their folders
# MAGIC `domain.yml` names the domain's `owners_group` (owner of its schemas, CAN_MANAGE on its
# MAGIC jobs), contacts, and `readers:` (groups granted `USE CATALOG`, `USE SCHEMA` and `SELECT`
# MAGIC on what the domain writes). `.github/CODEOWNERS` is generated from the owners groups, so
# MAGIC a change to a domain's folder needs its owners' review; pre-commit keeps it in step.

# COMMAND ----------

sh("cat orgs/acme/domains/transport/domain.yml")
meshops("codeowners", "--check")
meshops("plan", "--grants", "--flow", REVENUE, "--env", "dev")

# COMMAND ----------

# EXERCISE 05.1
# The group course-auditors must read everything the transport domain writes: add it to
# readers: in orgs/acme/domains/transport/domain.yml (keep acme-analysts), then run the next cell.

# COMMAND ----------

meshops("validate")
meshops("plan", "--grants", "--flow", REVENUE, "--env", "dev")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. A cross-domain data product
# MAGIC transport publishes `revenue_per_inhabitant` and `revenue_by_borough` (`products.yml`).
# MAGIC finance's `revenue_share` flow declares them under `consumes:` and reads them with
# MAGIC `table("transport.taxinyc.revenue_per_inhabitant")` (`from dataproducts import table`, a
# MAGIC lib without dependencies that meshops attaches to the job), which resolves to the table of
# MAGIC the same deployment when there is one (your branch ran revenue), else prod's, else the
# MAGIC newest local build. So finance never hard-codes transport's schema, and transport knows
# MAGIC who reads its tables.

# COMMAND ----------

meshops("run", INGEST, REVENUE, REVENUE_SHARE)
display(spark.table(names(REVENUE_SHARE).table("revenue_share")))
meshops("contracts")
meshops("lineage", "--flow", REVENUE_SHARE)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. Operations: runs, payloads, cleanup
# MAGIC `meshops runs` lists local runs (status, time, tables written; task logs under
# MAGIC `.meshops/runs/`). `meshops plan` prints the exact Jobs API payload a deploy sends (tasks,
# MAGIC `git_source` pinned to the commit or tag, parameters, tags, permissions), and `--json`
# MAGIC gives it to scripts; CI prints the plan of a pull request's flows as its summary.
# MAGIC `meshops cleanup` lists stale dev deployments; `--apply` deletes them.

# COMMAND ----------

meshops("runs", "--limit", "5")
meshops("plan", "--flow", REVENUE, "--env", "dev")

# COMMAND ----------

# EXERCISE 05.2
# Read the revenue flow's dev payload as JSON (`meshops plan --flow ... --env dev --json`, e.g.
# through sh(f"{sys.executable} -m meshops plan ...")) and record its task keys, in order.
revenue_tasks = ...
answer("05", revenue_tasks=revenue_tasks)

# COMMAND ----------

meshops("cleanup", "--target", "local")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Check

# COMMAND ----------

check("05")
