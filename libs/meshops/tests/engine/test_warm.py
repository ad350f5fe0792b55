"""The warm engine (issue 15, item 6): a Spark Connect server with the embedded session's
settings that runs reuse, with the same tables, row counts and task logs; stale records are
told apart from live servers, and stop leaves no process.

Clients run in subprocesses, as `meshops run` does: a process has one session, and this
test process may hold an embedded one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from meshops.cli import app
from meshops.engine import session, warm
from meshops.engine.jvm import jar_key
from meshops.errors import MeshopsError
from meshops.state import StatePaths
from meshops.testing.mesh import FlowDef, commit_all, init_repo, platform_files, write_flow

FLOW = FlowDef(name="warmed", tasks={"extract": (), "load": ("extract",)})

EXTRACT = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {dbname(db='warmed', cat=catalog)}")
numbers = tablename(tbl="numbers", db="warmed", cat=catalog)
spark.sql(f"CREATE OR REPLACE TABLE {numbers} AS SELECT id FROM range(5)")
print("extract: wrote", numbers)
"""

LOAD = """# Databricks notebook source
import sys

from brickops.datamesh.naming import catname_from_path, tablename

catalog = catname_from_path()
numbers = spark.table(tablename(tbl="numbers", db="warmed", cat=catalog))
evens = numbers.where("id % 2 = 0")
evens.write.mode("overwrite").saveAsTable(tablename(tbl="evens", db="warmed", cat=catalog))
display(evens.selectExpr("id * 100 AS shown_id"))
print("load: to stderr", file=sys.stderr)
"""

RUN = """
import json, sys
from pathlib import Path
from meshops import context, discover
from meshops.engine import flowrun, session
from meshops.state import StatePaths

repo, state = Path(sys.argv[1]), StatePaths(Path(sys.argv[2]))
ctx = context.detect(repo, env="local", environ={})
mesh = discover.scan(repo)
options = flowrun.RunOptions(progress=False)
result = flowrun.run_flow(ctx, mesh, mesh.find(sys.argv[3]), options, state=state)
spark = flowrun.spark_for(ctx, mesh, state)
print(json.dumps({
    "mode": session.mode(spark),
    "status": result.record.status,
    "errors": [t.error for t in result.record.tasks if t.error],
    "tables": {t.key: t.tables for t in result.record.tasks},
    "reads": {t.key: t.reads for t in result.record.tasks},
    "logs": {t.key: Path(t.log).read_text() for t in result.record.tasks},
}))
"""

TAGS = """
import json, sys
from pathlib import Path
from pyspark.sql import SparkSession
from meshops.engine import session
from meshops.state import StatePaths

state = StatePaths(Path(sys.argv[1]))
spark = session.get_spark(session.SessionOptions(state=state, catalogs=("samples",)))
spark.sql("CREATE SCHEMA IF NOT EXISTS samples.warm")

def first_line(run):
    try:
        run()
    except Exception as error:
        return str(error).splitlines()[0]
    return ""

with session.task_tag(spark, "t1", read_only=["samples"]):
    read_only = sorted(session.read_only_catalogs(spark))
    table = first_line(lambda: spark.range(2).write.saveAsTable("samples.warm.refused"))
    volume = first_line(lambda: spark.sql("CREATE VOLUME samples.warm.refused_volume"))
    with session.shared_inputs_writable(spark):
        spark.range(3).write.mode("overwrite").saveAsTable("samples.warm.loaded")
with session.task_tag(spark, "t2"):
    spark.range(4).write.mode("overwrite").saveAsTable("samples.warm.allowed")
spark.sql("USE CATALOG samples")
other = SparkSession.builder.remote(sys.argv[2]).create()  # another client's session
print(json.dumps({
    "mode": session.mode(spark),
    "read_only": read_only,
    "after": sorted(session.read_only_catalogs(spark)),
    "table": table,
    "volume": volume,
    "t1": session.drain_writes(spark, "t1"),
    "t2": session.drain_writes(spark, "t2"),
    "rows": spark.table("samples.warm.allowed").count(),
    "mine": spark.catalog.currentCatalog(),
    "other": other.catalog.currentCatalog(),
    "message": session.shared_input_message(spark, "samples"),
}))
other.stop()
"""


SCHEMAS = """
import json, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.remote(sys.argv[1]).create()
print(json.dumps([row[0] for row in spark.sql("SHOW SCHEMAS IN spark_catalog").collect()]))
spark.stop()
"""


def client(script: str, *args: str, cwd: Path) -> Any:
    """Run `script` as a meshops process would run (no SPARK_REMOTE); its last line's JSON."""
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "MESHOPS_STATE_DIR")}
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- without a JVM -------------------------------------------------------------------------


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[int]:
    """A process whose command line serves the state folder `tmp_path`, as the daemon's does
    (`... meshops.engine.warm serve STATE`); it only sleeps."""
    state = str(tmp_path.resolve())
    code = "import time; time.sleep(600)"
    process = subprocess.Popen([sys.executable, "-c", code, warm.DAEMON_MODULE, "serve", state])
    yield process.pid
    process.kill()
    process.wait()


def record(where: StatePaths, pid: int, **fields: object) -> warm.Engine:
    """Write an engine record as the daemon does, for the process `pid`."""
    engine = warm.Engine(
        pid=pid,
        port=1,
        state=str(where.root.resolve()),
        fingerprint=warm.fingerprint(session.SessionOptions(state=where)),
        python=sys.executable,
        started="now",
    )
    engine = replace(engine, **fields)  # type: ignore[arg-type]
    path = warm.record_path(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(engine)), encoding="utf-8")
    return engine


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 that answers, as the server's does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.unit
def test_a_failed_connect_leaves_the_process_classic(monkeypatch: pytest.MonkeyPatch) -> None:
    # pyspark marks the process as Connect before it connects; a server that does not answer
    # must not leave that mark, or every later local session's functions build Connect columns
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    def refuse(self: object) -> None:
        raise ConnectionError("the server did not answer")

    monkeypatch.delenv(session.CONNECT_MODE, raising=False)
    monkeypatch.setattr(ConnectSession.Builder, "create", refuse)
    with pytest.raises(ConnectionError):
        session.remote_session(f"sc://127.0.0.1:{warm.free_port()}", "refused")
    assert session.CONNECT_MODE not in os.environ


@pytest.mark.unit
def test_no_record_means_embedded(tmp_path: Path) -> None:
    state = StatePaths(tmp_path)
    found = warm.status(state)
    assert (found.up, found.engine, found.stale) == (False, None, None)
    assert found.describe() == f"no warm engine for {tmp_path.resolve()}"
    assert session.pick_mode(session.SessionOptions(state=state, mode="local")) == ("local", "")
    with pytest.raises(MeshopsError, match="no warm engine is up for .*`meshops engine start`"):
        session.pick_mode(session.SessionOptions(state=state, mode="warm"))


@pytest.mark.unit
def test_a_gone_pid_is_stale_and_stop_clears_it(tmp_path: Path) -> None:
    state = StatePaths(tmp_path)
    pid = gone_pid()
    record(state, pid)
    found = warm.status(state)
    assert not found.up
    assert found.stale == f"pid {pid} is no longer the engine"
    assert "`meshops engine stop` clears it" in found.describe()
    # a stale record is no engine: the session starts embedded
    assert session.pick_mode(session.SessionOptions(state=state)) == ("local", "")
    stopped = warm.stop(state)
    assert stopped.stale == f"pid {pid} is no longer the engine" and stopped.killed == ()
    assert not warm.record_path(state).exists()


@pytest.mark.unit
def test_a_recycled_pid_a_dead_port_or_another_folder_is_stale(
    tmp_path: Path, listening: int, standin: int
) -> None:
    state = StatePaths(tmp_path)
    record(state, os.getpid(), port=listening)  # a live process, but not the engine
    assert warm.status(state).stale == f"pid {os.getpid()} is no longer the engine"
    closed = warm.free_port()
    record(state, standin, port=closed)
    assert warm.status(state).stale == f"pid {standin} does not answer on port {closed}"
    record(state, standin, port=listening, state="/elsewhere")
    assert warm.status(state).stale == "it was recorded for /elsewhere"
    record(state, standin, port=listening)
    assert warm.status(state).up


@pytest.mark.unit
def test_an_engine_with_other_settings_is_not_reused(
    tmp_path: Path, listening: int, standin: int
) -> None:
    state = StatePaths(tmp_path)
    record(state, standin, port=listening, fingerprint="0123456789abcdef")
    with pytest.raises(MeshopsError, match="runs with another configuration"):
        session.pick_mode(session.SessionOptions(state=state))
    record(state, standin, port=listening)
    assert session.pick_mode(session.SessionOptions(state=state)) == (
        "warm",
        f"sc://127.0.0.1:{listening}",
    )


@pytest.mark.unit
def test_fingerprint_is_the_embedded_sessions_settings(tmp_path: Path) -> None:
    base = session.SessionOptions(state=StatePaths(tmp_path / "a"))
    same = warm.fingerprint(base)
    # what each client session sets for itself, or where jars are cached, does not count
    assert warm.fingerprint(replace(base, catalogs=("samples",), app_name="x")) == same
    assert warm.fingerprint(replace(base, jar_cache=tmp_path / "jars", mode="local")) == same
    assert warm.fingerprint(warm.server_options(base.state, 15002)) == same
    assert warm.server_options(base.state, 15002).long_lived  # its JVM compiles fully
    for other in (
        replace(base, state=StatePaths(tmp_path / "b")),
        replace(base, shuffle_partitions=8),
        replace(base, extra_conf={"spark.sql.ansi.enabled": "false"}),
        replace(base, delta=False),
    ):
        assert warm.fingerprint(other) != same, other


@pytest.mark.unit
def test_one_test_process_at_a_time_claims_the_engine(tmp_path: Path) -> None:
    state = StatePaths(tmp_path)
    first = warm.claim(state)
    assert first is not None
    assert warm.claim(state) is None  # another process (here: another open file) waits
    first.close()
    again = warm.claim(state)
    assert again is not None
    again.close()


@pytest.mark.unit
def test_status_command_json(
    tmp_path: Path, listening: int, standin: int, meshops_repo_root: Path
) -> None:
    state = StatePaths(tmp_path)
    engine = record(state, standin, port=listening)
    repo = tmp_path / "repo"  # inside the state folder: fine for a status
    platform_files(meshops_repo_root, repo)
    done = CliRunner().invoke(
        app,
        ["--repo", str(repo), "engine", "status", "--json"],
        env={"MESHOPS_STATE_DIR": str(state.root)},
    )
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    assert shown["up"] is True and shown["url"] == engine.url
    assert shown["engine"]["pid"] == standin


# ---- a real server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, meshops_repo_root: Path) -> Path:
    root = tmp_path_factory.mktemp("warm") / "repo"
    platform_files(meshops_repo_root, root)
    init_repo(root)
    folder = write_flow(root, FLOW)
    (folder / "extract.py").write_text(EXTRACT, encoding="utf-8")
    (folder / "load.py").write_text(LOAD, encoding="utf-8")
    commit_all(root, "a flow to run warm")
    return root


@pytest.fixture(scope="module")
def state(repo: Path, meshops_repo_root: Path) -> StatePaths:
    state = StatePaths(repo.parent / "state")
    # the plugin jar the test processes compiled already, instead of compiling it again
    cached = meshops_repo_root / ".meshops" / "jars" / f"meshops-spark-{jar_key()}.jar"
    if cached.is_file():
        state.jars.mkdir(parents=True)
        shutil.copy2(cached, state.jars / cached.name)
    return state


@pytest.fixture(scope="module")
def engine(state: StatePaths, repo: Path) -> Iterator[warm.Engine]:
    started = warm.start(state, cwd=repo)
    try:
        yield started
    finally:
        warm.stop(state)


@pytest.mark.spark
@pytest.mark.integration
def test_warm_engine_end_to_end(engine: warm.Engine, state: StatePaths, repo: Path) -> None:
    # up, and found by a session of the same settings
    found = warm.status(state)
    assert found.up and found.engine == engine
    assert session.pick_mode(session.SessionOptions(state=state)) == ("warm", engine.url)
    processes = warm.group_members(engine.pid)
    assert engine.pid in processes and len(processes) >= 2  # the daemon and its JVM
    assert warm.start(state) == engine  # starting again keeps the one up

    # a flow run on it: real tables with their row counts, the task logs
    run = client(RUN, str(repo), str(state.root), FLOW.rel, cwd=repo)
    assert run["mode"] == "warm", run
    assert run["status"] == "SUCCESS", run["errors"]
    tables = run["tables"]
    assert isinstance(tables, dict)
    numbers = next(iter(tables["extract"]))
    schema = numbers.rsplit(".", 1)[0]
    assert tables == {"extract": {numbers: 5}, "load": {f"{schema}.evens": 3}}
    assert run["reads"] == {"extract": [], "load": [numbers]}  # lineage: what each task read
    logs = run["logs"]
    assert isinstance(logs, dict)
    assert logs["extract"] == f"extract: wrote {numbers}\n"
    assert "|shown_id|" in logs["load"] and "|400     |" in logs["load"]  # display()
    assert "load: to stderr" in logs["load"]

    # per-thread settings travel as session tags; each client session keeps its own state
    tags = client(TAGS, str(state.root), engine.url, cwd=repo)
    refusal = str(tags["message"])
    assert refusal.startswith("samples is a shared input catalog")
    assert tags["mode"] == "warm"
    assert tags["read_only"] == ["samples"] and tags["after"] == []
    assert refusal in str(tags["table"])
    assert tags["volume"] == refusal
    assert tags["t1"] == ["samples.warm.loaded"]  # refused writes are not recorded
    assert tags["t2"] == ["samples.warm.allowed"] and tags["rows"] == 4
    assert (tags["mine"], tags["other"]) == ("samples", "spark_catalog")

    # what a test process that takes the engine starts from: nothing, as a new state folder
    landing = state.volumes / "samples" / "warm" / "files"
    landing.mkdir(parents=True)
    warm.reset(state, engine)
    assert client(SCHEMAS, engine.url, cwd=repo) == ["default"]
    assert list(state.warehouse.iterdir()) == []
    assert not state.volumes.exists() and not state.runs_db.exists()
    assert warm.status(state).up

    # stop: no process of the server is left, nor its record
    stopped = warm.stop(state)
    assert stopped.engine == engine and stopped.killed == ()
    assert warm.group_members(engine.pid) == []
    assert not any(psutil.pid_exists(pid) for pid in processes)
    assert not warm.record_path(state).exists()

    # its record left behind is stale, and runs start embedded with the same outcome
    warm.record_path(state).write_text(json.dumps(asdict(engine)), encoding="utf-8")
    assert warm.status(state).stale == f"pid {engine.pid} is no longer the engine"
    embedded = client(RUN, str(repo), str(state.root), FLOW.rel, cwd=repo)
    assert embedded["mode"] == "local"
    assert (embedded["status"], embedded["tables"]) == ("SUCCESS", tables)
    assert embedded["reads"] == run["reads"]
    assert embedded["logs"] == logs
