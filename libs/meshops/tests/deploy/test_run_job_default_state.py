"""deploy-dev → run-job → tables with the default state folder `<repo>/.meshops` (issue 15).

Every other deploy test moves the state folder away with MESHOPS_STATE_DIR, so none of them
sees what a user sees: the job's checkout lives under `<repo>/.meshops/worktrees/<commit>`,
inside the state folder, and flows must still be found there and run with the main
checkout's state. Each command runs as its own process, as a user runs them (the test
process may already hold a Spark session on another state folder).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meshops.engine.runs import RunStore
from meshops.state import STATE_DIR, StatePaths
from meshops.targets.local import JobRegistry
from meshops.testing.mesh import (
    GIT_ENV,
    FlowDef,
    commit_all,
    git,
    init_repo,
    platform_files,
    write_flow,
)

pytestmark = pytest.mark.integration

FLOW = FlowDef(name="revenue", tasks={"aggregate": (), "report": ("aggregate",)})
CATALOG = "acme_transport_taxinyc"
AGGREGATE = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='revenue', cat=catalog)}")

# COMMAND ----------

spark.range(4).write.mode("overwrite").saveAsTable(
    tablename(tbl="by_borough", db="revenue", cat=catalog)
)
print("aggregate: wrote by_borough")
"""
REPORT = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, tablename

catalog = catname_from_path()
source = spark.table(tablename(tbl="by_borough", db="revenue", cat=catalog))
source.groupBy().count().write.mode("overwrite").saveAsTable(
    tablename(tbl="report", db="revenue", cat=catalog)
)
"""


def make_clone(tmp_path: Path, source_root: Path) -> Path:
    """An origin with one flow and a clone of it on branch feat-x, one commit ahead."""
    origin = tmp_path / "origin"
    platform_files(source_root, origin)
    folder = write_flow(origin, FLOW)
    (folder / "aggregate.py").write_text(AGGREGATE, encoding="utf-8")
    (folder / "report.py").write_text(REPORT, encoding="utf-8")
    init_repo(origin)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "config", "user.email", GIT_ENV["GIT_AUTHOR_EMAIL"])
    git(clone, "config", "user.name", GIT_ENV["GIT_AUTHOR_NAME"])
    git(clone, "checkout", "-q", "-b", "feat-x")
    (clone / FLOW.rel / "report.py").write_text(REPORT + "print('report: done')\n")
    commit_all(clone, "report says when it is done")
    git(clone, "push", "-q", "-u", "origin", "feat-x")
    return clone


def meshops(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`meshops --repo REPO ARGS...` in a new process, with the default state folder."""
    env = {k: v for k, v in os.environ.items() if k != "MESHOPS_STATE_DIR"}
    env.update(GIT_ENV)
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    env.update(COLUMNS="240", NO_COLOR="1", TERM="dumb")
    return subprocess.run(
        [sys.executable, "-m", "meshops", "--repo", str(repo), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_deployed_dev_job_runs_with_the_default_state_folder(
    tmp_path: Path, meshops_repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MESHOPS_STATE_DIR", raising=False)
    clone = make_clone(tmp_path, meshops_repo_root)
    state = StatePaths(clone / STATE_DIR)
    assert StatePaths.for_repo(clone) == state
    # the catalog plugin compiled by the test session, so this test needs no javac
    for jar in (meshops_repo_root / STATE_DIR / "jars").glob("meshops-spark-*.jar"):
        state.jars.mkdir(parents=True, exist_ok=True)
        shutil.copy2(jar, state.jars / jar.name)
    commit = git(clone, "rev-parse", "HEAD")
    job = f"transport_taxinyc_dev_revenue_janedoe_featx_{commit[:8]}"
    schema = f"{CATALOG}.dev_janedoe_featx_{commit[:8]}_revenue"

    # deploy-dev: the flow the branch changed, pinned to its commit, in <clone>/.meshops
    deployed = meshops(clone, "deploy", "--env", "dev", "--target", "local", "--json")
    assert deployed.returncode == 0, deployed.stderr
    assert [(r["job"], r["action"]) for r in json.loads(deployed.stdout)] == [(job, "created")]
    assert [j.name for j in JobRegistry(state.jobs_db).all()] == [job]

    # run-job: the checkout of the commit under <clone>/.meshops/worktrees finds its flow
    ran = meshops(clone, "run-job", job)
    assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}"
    assert "no flow there" not in ran.stderr
    checkout = state.worktrees / commit
    assert (checkout / FLOW.rel / "report.py").is_file()
    assert not (checkout / STATE_DIR).exists()  # the run kept the main checkout's state
    assert StatePaths.for_repo(checkout) == state  # as do commands run inside the checkout
    (run,) = RunStore(state.runs_db).list(10)
    assert (run.job_name, run.status, run.commit, run.env) == (job, "SUCCESS", commit, "dev")
    assert {t.key: t.tables for t in run.tasks} == {
        "aggregate": {f"{schema}.by_borough": 4},
        "report": {f"{schema}.report": 1},
    }
    logs = {t.key: Path(t.log) for t in run.tasks}
    assert all(log.is_relative_to(state.root / "runs" / run.run_id) for log in logs.values())
    assert logs["aggregate"].read_text(encoding="utf-8") == "aggregate: wrote by_borough\n"
    assert logs["report"].read_text(encoding="utf-8") == "report: done\n"

    # the tables are in the default state's metastore, for any later process to read
    listed = meshops(clone, "tables", "--all")
    assert listed.returncode == 0, listed.stderr
    rows = {
        cells[0]: cells[1]
        for line in listed.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 2
    }
    assert rows.get(f"{schema}.by_borough") == "4", listed.stdout
    assert rows.get(f"{schema}.report") == "1", listed.stdout
