# Databricks notebook source
# MAGIC %md
# MAGIC # 02 Deploy tasks: a feature branch, dev jobs, a release, the workflows
# MAGIC
# MAGIC **Goals**: add a task to the revenue flow on a feature branch and test it; run it locally;
# MAGIC deploy your branch as dev jobs and study the tables they write; change the task and
# MAGIC redeploy; release it (staging, integration tests, a tag, prod); clean up; then read the
# MAGIC GitHub workflows that do all of this on every push and tag.
# MAGIC
# MAGIC **Where this runs, and the one difference.** Everything below deploys to `TARGET`. On a
# MAGIC laptop it is `"local"`: a job registry under `.meshops/` whose jobs `meshops run-job` runs
# MAGIC on local Spark at their pinned commit. In a workspace set `TARGET = "databricks"`
# MAGIC (databricks-sdk's unified auth: `DATABRICKS_HOST` and a token or OAuth), run the `sh(...)`
# MAGIC git steps in a terminal, and start the deployed jobs from the Jobs UI instead of
# MAGIC `run-job`. A release also checks that the tag is on `origin/main`: in a clone with a
# MAGIC remote, do section 5 in a scratch clone without one (`git clone . ../scratch`), as
# MAGIC `nox -s course` does, so nothing is pushed.

# COMMAND ----------

TARGET = "local"  # in a workspace: "databricks"

from meshops.course import (
    INGEST,
    REVENUE,
    answer,
    check,
    meshops,
    names,
    run_tests,
    sample_data,
    sh,
)

sample_data()

# COMMAND ----------

# MAGIC %md
# MAGIC ## 1. A feature branch and a new task
# MAGIC Work never happens on main. A branch gives you your own names: the same flow on
# MAGIC `course/payment` writes `..._coursepayment_<commit>_revenue` tables and deploys
# MAGIC `transport_taxinyc_dev_revenue_<you>_coursepayment_<commit>` jobs.

# COMMAND ----------

# from main; again later: back to the branch you made (its commits kept)
sh("git switch main && (git switch course/payment 2>/dev/null || git switch -c course/payment)")

# COMMAND ----------

# MAGIC %md
# MAGIC A task is a notebook named after its `task_key`, listed under `tasks:` in the flow's
# MAGIC `deployment.yml`. Keep the logic in a function you can test (here a module beside the
# MAGIC notebooks, `payments.py`); the notebook only wires names, reads and writes.
# MAGIC
# MAGIC ```python
# MAGIC # revenue_by_payment.py (a Databricks notebook)
# MAGIC from brickops.datamesh.naming import catname_from_path, tablename
# MAGIC from payments import revenue_by_payment
# MAGIC catalog = catname_from_path()
# MAGIC trips = spark.table(tablename(tbl="trips", db="ingest", cat=catalog))
# MAGIC revenue_by_payment(trips).write.mode("overwrite").saveAsTable(
# MAGIC     tablename(tbl="revenue_by_payment", db="revenue", cat=catalog))
# MAGIC ```

# COMMAND ----------

# EXERCISE 02.1
# In the revenue flow (orgs/acme/domains/transport/projects/taxinyc/flows/prep/revenue/):
# 1. payments.py: `revenue_by_payment(trips)` -> one row per payment_type with trip_count
#    (bigint) and total_revenue (sum of total_amount, rounded to cents)
# 2. revenue_by_payment.py: the task notebook above (Databricks source format)
# 3. deployment.yml: a task `revenue_by_payment` (no dependencies)
# 4. tests/test_revenue_by_payment.py: a pytest test of revenue_by_payment (marked spark; the
#    `spark` fixture of the meshops pytest plugin gives the session)

# COMMAND ----------

run_tests(f"{REVENUE}/tests/test_revenue_by_payment.py")
meshops("validate")

# COMMAND ----------

# MAGIC %md
# MAGIC ## 2. Run it locally
# MAGIC `meshops run` runs the flow's tasks as the job would, on local Spark, under local names.
# MAGIC revenue reads the trips that ingest wrote under the same names, so run ingest first;
# MAGIC `--task` runs only the tasks named (here yours).

# COMMAND ----------

meshops("run", INGEST)
meshops("run", REVENUE, "--task", "revenue_by_payment")
display(spark.table(names(REVENUE).table("revenue_by_payment")))

# COMMAND ----------

# MAGIC %md
# MAGIC ## 3. Deploy your branch
# MAGIC Jobs run committed code, pinned to the commit: commit first. `meshops deploy --env dev`
# MAGIC plans each flow (the Jobs API payload), creates or updates the job by name, and skips jobs
# MAGIC whose content did not change. CI's `deploy-dev` workflow runs `nox -s deploy-dev` (the same,
# MAGIC for the flows the branch changed) on every push.

# COMMAND ----------

sh("git add -A && git commit -qm 'revenue: revenue by payment type'")
meshops("deploy", "--env", "dev", "--target", TARGET, "--flow", INGEST, "--flow", REVENUE)
meshops("jobs", "--target", TARGET)
meshops("plan", "--flow", REVENUE, "--env", "dev")  # the payload the deploy sent

# COMMAND ----------

# MAGIC %md
# MAGIC ## 4. Change the task, redeploy, run the jobs, study the dev tables
# MAGIC A new commit is a new deployment: its job and schema carry the new commit, the old ones
# MAGIC stay until the janitor removes them (section 6). The dev jobs then run the new commit and
# MAGIC write the dev schema of that deployment: compare its tables with your local run's.

# COMMAND ----------

# EXERCISE 02.2
# Readers want the average tip per payment type: add a column avg_tip (avg of tip_amount,
# rounded to cents) to revenue_by_payment in payments.py, and to your test.

# COMMAND ----------

run_tests(f"{REVENUE}/tests/test_revenue_by_payment.py")
sh("git add -A && git commit -qm 'revenue: average tip per payment type'")
meshops("deploy", "--env", "dev", "--target", TARGET, "--flow", INGEST, "--flow", REVENUE)
if TARGET == "local":
    meshops("run-job", names(INGEST, env="dev").job)
    meshops("run-job", names(REVENUE, env="dev").job)
display(spark.table(names(REVENUE, env="dev").table("revenue_by_payment")))
answer("02", dev_job=names(REVENUE, env="dev").job, dev_commit=sh("git rev-parse HEAD").strip())

# COMMAND ----------

# MAGIC %md
# MAGIC ## 5. Release: staging, integration tests, a tag, prod
# MAGIC Merging to main deploys **staging** (one long-lived deployment pinned to main's commit;
# MAGIC CI's `deploy-staging`), then runs the staging jobs and each flow's `tests/integration/`
# MAGIC against their tables (`nox -s integration -- --env staging`), recording the outcome per
# MAGIC flow for the commit. A release tag `vX.Y.Z` on that commit then deploys **prod**
# MAGIC (`nox -s deploy-prod`, CI's `deploy-prod` after a reviewer approves): jobs pinned to the
# MAGIC tag, prod names. Prod refuses a commit that did not pass staging, a dirty worktree, or a
# MAGIC tag main does not hold. `nox -s deploy-prod` is `meshops deploy --env prod` after those
# MAGIC checks; we call meshops directly, as nox would start another process.

# COMMAND ----------

sh("git switch main && git merge -q --no-ff course/payment -m 'merge course/payment'")
meshops("deploy", "--env", "staging", "--target", TARGET, "--flow", INGEST, "--flow", REVENUE)
meshops("integration", "--env", "staging", "--target", TARGET, "--flow", INGEST, "--flow", REVENUE)
sh("git tag -f v0.1.0")
meshops("deploy", "--env", "prod", "--target", TARGET, "--flow", INGEST, "--flow", REVENUE)
meshops("jobs", "--target", TARGET)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 6. Clean up
# MAGIC Dev deployments pile up: one per branch and commit. `meshops cleanup` lists those whose
# MAGIC branch is gone from origin or that a newer commit of the branch superseded more than
# MAGIC `janitor.stale_days` ago (`--stale-days 0`: now); `--apply` deletes them (jobs, schemas it
# MAGIC can prove it made, job checkouts). Prod is never touched. CI's `cleanup` workflow runs it
# MAGIC nightly and when a branch is deleted.

# COMMAND ----------

meshops("cleanup", "--target", TARGET, "--stale-days", "0")
meshops("cleanup", "--target", TARGET, "--stale-days", "0", "--apply")
meshops("jobs", "--target", TARGET)

# COMMAND ----------

# MAGIC %md
# MAGIC ## 7. The same through GitHub Actions
# MAGIC `.github/workflows/` holds one workflow per step you just ran by hand: `ci.yml` (pull
# MAGIC requests: lint, tests, the plan of the changed flows), `deploy-dev.yml` (push to a branch),
# MAGIC `deploy-staging.yml` (push to main: staging, then integration), `deploy-prod.yml` (a tag,
# MAGIC behind the `production` environment's reviewers) and `cleanup.yml`. Each is a few `nox`
# MAGIC sessions with `--target databricks`; the cell prints what each runs, which is what you
# MAGIC ran above with `--target local`.

# COMMAND ----------

from pathlib import Path

import yaml

for workflow in sorted(Path(".github/workflows").glob("*.yml")):
    spec = yaml.safe_load(workflow.read_text())
    triggers = spec.get("on", spec.get(True))
    steps = [s["run"] for job in spec["jobs"].values() for s in job.get("steps", []) if "run" in s]
    print(f"{workflow.name}: on {list(triggers) if isinstance(triggers, dict) else triggers}")
    for step in steps:
        print("    $", step.strip().replace("\n", "\n      "))

# COMMAND ----------

# MAGIC %md
# MAGIC ## Check
# MAGIC `meshops course check 02`: your task, its test, your branch's dev jobs and tables, the
# MAGIC release.

# COMMAND ----------

check("02")
