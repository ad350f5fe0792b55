# Databricks notebook source
# MAGIC %md
# MAGIC # 00 Setup: the repository, its commands, names from path and branch
# MAGIC
# MAGIC **Goals**: clone the mesh and run its two commands; know where a team's code lives; see how
# MAGIC every catalog, schema, table and job name comes from a flow's folder and your git branch.
# MAGIC
# MAGIC **Where this runs.** On a laptop: `meshops course run 00` runs this notebook on local Spark
# MAGIC (its `meshops(...)` cells run the CLI in the same process), `meshops course check 00` checks
# MAGIC your exercises. In a Databricks workspace: open the notebook in a Git folder of your clone,
# MAGIC attach a cluster with the meshops wheel (`nox -s wheels`), and run the `sh(...)` steps in
# MAGIC the cluster's web terminal; everything else is the same. This lesson deploys nothing.

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. Clone and the two commands
# MAGIC ```bash
# MAGIC git clone <the mesh's URL> && cd <it>
# MAGIC python3 -m pip install nox uv && nox -s demo   # sample data, every flow, tables
# MAGIC python3 -m pip install nox uv && nox -s lint tests course   # what CI runs
# MAGIC ```
# MAGIC Everything runs in one environment, `.nox/workspace`; `source .nox/workspace/bin/activate`
# MAGIC gives you `meshops` on the command line. The state of local runs (metastore, tables,
# MAGIC volumes, job registry, MLflow) lives in the git-ignored folder `.meshops/`.

# COMMAND ----------

from meshops.course import REVENUE, answer, check, meshops, names, sh  # noqa: F401 - names: 00.2

sh("git status --short --branch | head -5")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. The layout
# MAGIC A domain team owns `orgs/<org>/domains/<domain>/`: its `domain.yml` (owners, readers),
# MAGIC projects with their libs, and flows: `flows/prep/<flow>/` (data) and `flows/ml/<flow>/`
# MAGIC (models). A flow is a `deployment.yml` (tasks, schedule, like the Jobs API) and one
# MAGIC Databricks-source notebook per task. `meshops flows` lists them with the libs they import.

# COMMAND ----------

sh("ls orgs/acme/domains/*/domain.yml orgs/acme/domains/*/projects/*/flows/*/")
meshops("flows")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. Names come from the path and the branch
# MAGIC Nobody writes a catalog, schema or job name. brickops computes them from the notebook's
# MAGIC folder (org, domain, project, flow) and the git state (env, user, branch, commit):
# MAGIC
# MAGIC | env | schema of the revenue flow | job |
# MAGIC |---|---|---|
# MAGIC | local | `local_<u>_<b>_<c8>_revenue` | (none: `meshops run`) |
# MAGIC | dev | `dev_<u>_<b>_<c8>_revenue` | `transport_taxinyc_dev_revenue_<u>_<b>_<c8>` |
# MAGIC | prod | `revenue` | `transport_taxinyc_prod_revenue` |
# MAGIC
# MAGIC `<u>` is you, `<b>` your branch, `<c8>` the commit's first 8 characters. The catalog is
# MAGIC `acme_transport_taxinyc` in every env. Two people, or two branches, never write the same
# MAGIC table; a dev name can never equal a prod name.

# COMMAND ----------

meshops("names", f"{REVENUE}/revenue_by_borough.py")
meshops("names", f"{REVENUE}/revenue_by_borough.py", "--env", "prod")

# COMMAND ----------

# EXERCISE 00.1
# Make your course branch: run `git switch -c course/<your name>` here (sh("...")) or in a
# terminal. Then run the next cell and watch the schema change with the branch.

# COMMAND ----------

meshops("names", f"{REVENUE}/revenue_by_borough.py", "--env", "dev")

# COMMAND ----------

# EXERCISE 00.2
# Record two names for the check, as `meshops names` shows them on your branch:
# - local_table: the full three-level name of the table revenue_by_borough of a local run
# - dev_job: the revenue flow's dev job name
answer("00", local_table="...", dev_job="...")

# COMMAND ----------

# MAGIC %md
# MAGIC ## Check
# MAGIC `meshops course check 00` (or the cell below) says what is right and hints at the rest.

# COMMAND ----------

check("00")
