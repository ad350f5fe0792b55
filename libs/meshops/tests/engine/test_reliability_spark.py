"""Reliability and security of real flow runs: secrets never reach the notebook's environment,
logs, results or run records; dev schemas carry the evidence the janitor needs; an overwrite
killed mid-write leaves the previous rows of a Delta table intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meshops import context, discover, identity
from meshops.cli import app
from meshops.context import Context
from meshops.engine import flowrun
from meshops.state import StatePaths
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow

pytestmark = [pytest.mark.spark, pytest.mark.integration]

CATALOG = "acme_transport_taxinyc"
SECRET = "kv-s3cr3t-value-42"
CREDENTIALS = {
    "DATABRICKS_TOKEN": "dapi00000000000000000000000000000000",
    "DATABRICKS_CLIENT_SECRET": "dose-client-secret-1",
    "ARM_CLIENT_SECRET": "arm-client-secret-1",
}

LEAK = """# Databricks notebook source
import json, os
token = dbutils.secrets.get("kv", "api")
print("the secret is", token)
seen = sorted(k for k in os.environ if "SECRET" in k or "TOKEN" in k)
print("credentials in my environment:", seen)
dbutils.jobs.taskValues.set("token", token)
dbutils.notebook.exit(json.dumps({"token": token, "seen": seen}))
"""


def test_secrets_reach_neither_environment_nor_logs_nor_records(
    mesh_repo: Path, spark: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_flow(mesh_repo, FlowDef(name="leak", tasks={"leak": ()}))
    (folder / "leak.py").write_text(LEAK)
    commit_all(mesh_repo, "leak")
    for key, value in {**CREDENTIALS, "MESHOPS_SECRET_KV_API": SECRET}.items():
        monkeypatch.setenv(key, value)
    ctx = context.detect(mesh_repo, env="local", environ={})
    mesh = discover.scan(mesh_repo)

    result = flowrun.run_flow(
        ctx, mesh, mesh.find(FlowDef(name="leak").rel), flowrun.RunOptions(progress=False)
    )

    assert result.ok, result.record.tasks
    (task,) = result.record.tasks
    assert json.loads(task.result) == {"token": "[REDACTED]", "seen": []}
    assert result.task_values == {("leak", "token"): "[REDACTED]"}
    log = Path(task.log).read_text()
    assert "the secret is [REDACTED]" in log
    assert "credentials in my environment: []" in log
    state = StatePaths.for_repo(mesh_repo)
    for value in (SECRET, *CREDENTIALS.values()):
        assert value not in log
        assert value.encode() not in state.runs_db.read_bytes()
    assert all(os.environ[k] == v for k, v in CREDENTIALS.items())  # restored after the run


def test_dev_schemas_carry_evidence_and_only_they_are_cleaned_up(
    mesh_repo: Path, spark: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABRICKS_HOST", "DATABRICKS_CONFIG_PROFILE", "MESHOPS_BRANCH", "MESHOPS_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(mesh_repo / "no-databrickscfg"))
    write_flow(mesh_repo, FlowDef(name="revenue", tasks={"aggregate": ()}))
    commit_all(mesh_repo, "revenue")
    commit = git(mesh_repo, "rev-parse", "HEAD")
    # a dev deployment of branch old-y, which is gone: its run made the schema
    dev = Context(mesh_repo, "dev", "jane.doe@acme.example", "old-y", commit, None, "")
    mesh = discover.scan(mesh_repo)
    result = flowrun.run_flow(
        dev, mesh, mesh.find(FlowDef(name="revenue").rel), flowrun.RunOptions(progress=False)
    )
    assert result.ok
    made = f"{CATALOG}.{identity.of(dev).id}_revenue"
    assert result.names.schema == made
    props = {
        r[0]: r[1]
        for r in spark.sql(f"DESCRIBE SCHEMA EXTENDED {made}").collect()  # type: ignore[attr-defined]
    }
    assert f"(meshops.deployment,{identity.of(dev).id})" in props["Properties"]
    spark.range(4).write.saveAsTable(f"{made}.t")  # type: ignore[attr-defined]
    # same name shape, same deployment, but made by hand: no evidence
    lookalike = f"{CATALOG}.{identity.of(dev).id}_lookalike"
    spark.sql(f"CREATE SCHEMA {lookalike}")  # type: ignore[attr-defined]
    spark.range(3).write.saveAsTable(f"{lookalike}.t")  # type: ignore[attr-defined]

    done = CliRunner().invoke(
        app, ["--repo", str(mesh_repo), "cleanup", "--target", "local", "--apply", "--json"]
    )

    assert done.exit_code == 0, done.output
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows[made]["action"] == "deleted"
    assert rows[lookalike]["action"] == "keep"
    assert "no evidence meshops created it" in rows[lookalike]["reason"]
    schemas = {r[0] for r in spark.sql(f"SHOW SCHEMAS IN {CATALOG}").collect()}  # type: ignore[attr-defined]
    assert f"{identity.of(dev).id}_revenue" not in schemas
    assert spark.table(f"{lookalike}.t").count() == 3  # type: ignore[attr-defined]
    spark.sql(f"DROP SCHEMA {lookalike} CASCADE")  # type: ignore[attr-defined]


# ---------------------------------------------------------------- killed mid-overwrite

PRELUDE = """
import json, sys
from pathlib import Path
from meshops.engine import session
from meshops.state import StatePaths

spark = session.get_spark(session.SessionOptions(
    state=StatePaths(Path(sys.argv[1])), jar_cache=Path(sys.argv[2]), catalogs=("samples",),
    mode="local"))
"""

OVERWRITER = """
spark.sql("CREATE SCHEMA samples.k")
spark.range(2000).selectExpr("id", "'old' AS v").write.saveAsTable("samples.k.t")
print("ready", flush=True)
big = spark.range(0, 400_000_000, 1, 64).selectExpr("id", "sha2(cast(id AS string), 256) AS v")
big.write.mode("overwrite").saveAsTable("samples.k.t")
print("overwritten", flush=True)
"""

READER = """
t = spark.table("samples.k.t")
print(json.dumps({
    "rows": t.count(),
    "values": sorted({r.v for r in t.select("v").distinct().collect()}),
    "versions": sorted(r.version for r in spark.sql("DESCRIBE HISTORY samples.k.t").collect()),
}))
"""


def _script(body: str) -> str:
    return textwrap.dedent(PRELUDE) + textwrap.dedent(body)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "MESHOPS_STATE_DIR")}


def test_an_overwrite_killed_mid_write_keeps_the_previous_rows(
    tmp_path: Path, meshops_repo_root: Path
) -> None:
    state, jars = tmp_path / "state", meshops_repo_root / ".meshops" / "jars"
    table = state / "warehouse" / "samples__k.db" / "t"
    writer = subprocess.Popen(
        [sys.executable, "-c", _script(OVERWRITER), str(state), str(jars)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its JVM too: the whole group is killed
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        before = set(table.glob("*.parquet"))
        deadline = time.monotonic() + 240
        while not set(table.glob("*.parquet")) - before:  # the overwrite is writing files
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait()
        assert not (table / "_delta_log" / f"{1:020d}.json").exists(), "not killed mid-write"
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait()
    time.sleep(1)  # the killed JVM's file locks go with it

    read = subprocess.run(
        [sys.executable, "-c", _script(READER), str(state), str(jars)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert read.returncode == 0, read.stderr[-3000:]
    assert json.loads(read.stdout.strip().splitlines()[-1]) == {
        "rows": 2000,
        "values": ["old"],
        "versions": [0],
    }
