"""Sessions in their own processes: tables outlive a process, the metastore has one user at a
time, and Spark Connect gets no plugin."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.integration]

PRELUDE = """
import json, sys
from pathlib import Path
from meshops.engine import session
from meshops.state import StatePaths

def start(**kw):
    return session.get_spark(session.SessionOptions(
        state=StatePaths(Path(sys.argv[1])), jar_cache=Path(sys.argv[2]), **kw))
"""

WRITER = """
spark = start(catalogs=("samples", "acme_transport_taxinyc"), mode="local")
spark.sql("CREATE SCHEMA samples.nyctaxi")
spark.sql("CREATE SCHEMA acme_transport_taxinyc.nyctaxi")
spark.createDataFrame([(1, "bronx"), (2, "queens")], "id int, borough string") \\
    .write.partitionBy("borough").saveAsTable("samples.nyctaxi.trips")
spark.sql("CREATE TABLE acme_transport_taxinyc.nyctaxi.trips AS SELECT 42 AS id")
spark.sql("CREATE VIEW samples.nyctaxi.ids AS SELECT id FROM samples.nyctaxi.trips")
print(json.dumps({"written": session.drain_writes(spark, "")}), flush=True)
sys.stdin.readline()  # hold the metastore until told to finish
"""

READER = """
spark = start()  # no catalogs named: they come from the stored schemas
print(json.dumps({
    "trips": sorted(map(tuple, spark.table("samples.nyctaxi.trips").collect())),
    "ids": sorted(r.id for r in spark.sql("SELECT id FROM samples.nyctaxi.ids").collect()),
    "other": [r.id for r in spark.table("acme_transport_taxinyc.nyctaxi.trips").collect()],
    "known": sorted(session.known_catalogs(spark)),
}))
"""

BLOCKED = """
from meshops.errors import MeshopsError
try:
    start()
except MeshopsError as error:
    print(json.dumps({"error": str(error)}))
"""

CONNECT = """
spark = start(catalogs=("samples",), extra_conf={"spark.sql.shuffle.partitions": "3"})
with session.task_tag(spark, "t"):
    count = spark.range(5).count()
print(json.dumps({
    "mode": session.mode(spark),
    "count": count,
    "drained": session.drain_writes(spark, "t"),
    "partitions": spark.conf.get("spark.sql.shuffle.partitions"),
}))
session.stop()
"""


def script(body: str) -> str:
    return textwrap.dedent(PRELUDE) + textwrap.dedent(body)


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "MESHOPS_STATE_DIR")}
    return clean | extra


@pytest.fixture(scope="module")
def jars(meshops_repo_root: Path) -> Path:
    return meshops_repo_root / ".meshops" / "jars"  # the cache the spark fixture uses


def run(body: str, state: Path, jars: Path, cwd: Path, **extra: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", script(body), str(state), str(jars)],
        cwd=cwd,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_tables_outlive_the_process_and_the_metastore_has_one_user(
    tmp_path: Path, jars: Path
) -> None:
    state, cwd = tmp_path / "state", tmp_path / "cwd"
    cwd.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", script(WRITER), str(state), str(jars)],
        cwd=cwd,
        env=env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdin is not None
        line = writer.stdout.readline()
        assert line, writer.stderr.read() if writer.stderr else ""
        assert json.loads(line)["written"] == [
            "samples.nyctaxi.trips",
            "acme_transport_taxinyc.nyctaxi.trips",
        ]
        # while the writer holds the state dir, a second process is told so before Spark starts
        blocked = run(BLOCKED, state, jars, cwd)
        error = str(blocked["error"])
        assert error.startswith(
            f"{state} is in use by another meshops run (pid {writer.pid} on "
        ), error
        assert error.endswith(": wait for it to end or point MESHOPS_STATE_DIR at another folder")
        writer.stdin.write("done\n")
        writer.stdin.flush()
        assert writer.wait(timeout=120) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()

    read = run(READER, state, jars, cwd)
    assert read == {
        "trips": [[1, "bronx"], [2, "queens"]],
        "ids": [1, 2],
        "other": [42],
        "known": ["acme_transport_taxinyc", "samples"],
    }
    assert list(cwd.iterdir()) == []  # no derby.log, metastore_db or spark-warehouse
    assert (state / "metastore" / "derby.log").is_file()


def test_spark_connect_session_has_no_plugin(tmp_path: Path, jars: Path) -> None:
    # SPARK_REMOTE=local[1] makes pyspark start a Spark Connect server for this process
    result = run(CONNECT, tmp_path / "state", jars, tmp_path, SPARK_REMOTE="local[1]")
    assert result == {"mode": "connect", "count": 5, "drained": [], "partitions": "3"}
    assert not (tmp_path / "state").exists()  # the local state folder is not used
