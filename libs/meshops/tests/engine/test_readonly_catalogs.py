"""Shared input catalogs (`external_catalogs`, e.g. `samples`) are read-only to flow tasks.

Flows read them and never write them; tools load them (tools/taxigen.py) and tests set them
up, outside any flow task. A refused write fails with one line naming the catalog and changes
nothing, whichever path it takes: SQL, DataFrame writers, Delta's API, a two-level metastore
name, files of one of the catalog's volumes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from meshops.engine import session
from meshops.state import StatePaths
from meshops.testing.mesh import FlowDef, commit_all, write_flow

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MESSAGE = (
    "samples is a shared input catalog (external_catalogs in .brickopscfg/config.yml): flows "
    "read it, never write it; write to your flow's own catalog/schema (brickops tablename) or "
    "load sample data with tools/taxigen.py"
)
SCHEMA = "readonly_check"
TABLE = f"samples.{SCHEMA}.trips"
VOLUME = f"/Volumes/samples/{SCHEMA}/landing"


# ---- which catalogs a flow task must not write ---------------------------------------------


@pytest.mark.unit
def test_a_flow_folder_reads_the_external_catalogs_of_its_config(mesh_repo: Path) -> None:
    folder = write_flow(mesh_repo, FlowDef(name="reader"))
    assert session.flow_shared_inputs(folder) == ("samples",)  # .brickopscfg/config.yml


@pytest.mark.unit
def test_outside_a_flow_folder_nothing_is_read_only(mesh_repo: Path, tmp_path: Path) -> None:
    assert session.flow_shared_inputs(mesh_repo) == ()  # the repository root: no flow
    (tmp_path / "deployment.yml").write_text("tasks: []\n")
    assert session.flow_shared_inputs(tmp_path) == ()  # no platform config above


@pytest.mark.unit
def test_the_analyzer_check_is_a_session_extension(tmp_path: Path) -> None:
    options = session.SessionOptions(state=StatePaths(tmp_path))
    delta = session.local_conf(options, tmp_path / "plugin.jar")["spark.sql.extensions"]
    assert delta.split(",") == [session.DELTA_EXTENSION, session.SHARED_INPUTS_EXTENSION]
    plain = session.SessionOptions(state=StatePaths(tmp_path), delta=False)
    conf = session.local_conf(plain, tmp_path / "plugin.jar")
    assert conf["spark.sql.extensions"] == session.SHARED_INPUTS_EXTENSION


# ---- every write path of a flow task --------------------------------------------------------


def _delta_update(spark: SparkSession) -> None:
    from delta.tables import DeltaTable

    DeltaTable.forName(spark, TABLE).update("trip_id = 1", {"fare": "0.0"})


def _delta_merge(spark: SparkSession) -> None:
    from delta.tables import DeltaTable

    source = spark.range(5).selectExpr("id AS trip_id", "1.0D AS fare").alias("s")
    target = DeltaTable.forName(spark, TABLE).alias("t")
    target.merge(source, "t.trip_id = s.trip_id").whenNotMatchedInsertAll().execute()


def _frame(spark: SparkSession) -> Any:
    return spark.range(2).selectExpr("id + 10 AS trip_id", "2.5D AS fare")


WRITES: dict[str, Callable[[SparkSession], object]] = {
    "INSERT INTO": lambda s: s.sql(f"INSERT INTO {TABLE} VALUES (9, 9.0)"),
    "INSERT OVERWRITE": lambda s: s.sql(f"INSERT OVERWRITE {TABLE} VALUES (9, 9.0)"),
    "MERGE INTO": lambda s: s.sql(
        f"MERGE INTO {TABLE} t USING (SELECT 1L AS trip_id, 0.0D AS fare) s "
        "ON t.trip_id = s.trip_id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    ),
    "UPDATE": lambda s: s.sql(f"UPDATE {TABLE} SET fare = 0"),
    "DELETE": lambda s: s.sql(f"DELETE FROM {TABLE} WHERE trip_id = 1"),
    "TRUNCATE": lambda s: s.sql(f"TRUNCATE TABLE {TABLE}"),
    "CREATE TABLE": lambda s: s.sql(f"CREATE TABLE samples.{SCHEMA}.other (id INT)"),
    "CREATE OR REPLACE TABLE AS": lambda s: s.sql(
        f"CREATE OR REPLACE TABLE {TABLE} AS SELECT 1L AS trip_id, 1.0D AS fare"
    ),
    "DROP TABLE": lambda s: s.sql(f"DROP TABLE {TABLE}"),
    "ALTER TABLE": lambda s: s.sql(f"ALTER TABLE {TABLE} ADD COLUMN tip DOUBLE"),
    "RESTORE": lambda s: s.sql(f"RESTORE TABLE {TABLE} TO VERSION AS OF 0"),
    "CREATE SCHEMA": lambda s: s.sql("CREATE SCHEMA IF NOT EXISTS samples.mine"),
    "DROP SCHEMA": lambda s: s.sql(f"DROP SCHEMA samples.{SCHEMA} CASCADE"),
    "CREATE VIEW": lambda s: s.sql(f"CREATE VIEW samples.{SCHEMA}.v AS SELECT 1 AS x"),
    "two-level metastore name": lambda s: s.sql(
        f"INSERT INTO spark_catalog.samples__{SCHEMA}.trips VALUES (9, 9.0)"
    ),
    "saveAsTable append": lambda s: _frame(s).write.mode("append").saveAsTable(TABLE),
    "saveAsTable overwrite": lambda s: _frame(s).write.mode("overwrite").saveAsTable(TABLE),
    "saveAsTable new table": lambda s: _frame(s).write.saveAsTable(f"samples.{SCHEMA}.new"),
    "insertInto": lambda s: _frame(s).write.insertInto(TABLE),
    "writeTo append": lambda s: _frame(s).writeTo(TABLE).append(),
    "DeltaTable.update": _delta_update,
    "DeltaTable.merge": _delta_merge,
    "files into a volume": lambda s: _frame(s).write.mode("append").parquet(VOLUME),
    "CREATE VOLUME": lambda s: s.sql(f"CREATE VOLUME samples.{SCHEMA}.other"),
    "DROP VOLUME": lambda s: s.sql(f"DROP VOLUME samples.{SCHEMA}.landing"),
    "DROP CATALOG": lambda s: s.sql("DROP CATALOG samples CASCADE"),
}


@pytest.fixture(scope="module")
def samples(spark: SparkSession) -> Iterator[SparkSession]:
    """A table and a volume in `samples`, set up as a tool would: outside any flow task."""
    session.register_catalogs(spark, ["samples", "acme_transport_taxinyc"])
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS samples.{SCHEMA}")
    spark.sql(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT 1L AS trip_id, 12.5D AS fare")
    # a second version, so that RESTORE to the first would change something
    spark.sql(f"ALTER TABLE {TABLE} SET TBLPROPERTIES ('meshops.test' = 'sample')")
    spark.sql(f"CREATE VOLUME IF NOT EXISTS samples.{SCHEMA}.landing")
    spark.range(3).write.mode("overwrite").parquet(f"{VOLUME}/trips")
    yield spark
    spark.sql(f"DROP SCHEMA IF EXISTS samples.{SCHEMA} CASCADE")


def _state(spark: SparkSession) -> tuple[list[tuple[Any, ...]], int, list[str]]:
    """The table's rows and Delta version, and the files of the volume."""
    version = spark.sql(f"DESCRIBE HISTORY {TABLE} LIMIT 1").first()
    assert version is not None
    volume = Path(str(spark.conf.get("spark.hadoop.meshops.volumes.root"))) / "samples" / SCHEMA
    files = sorted(p.relative_to(volume).as_posix() for p in volume.rglob("*"))
    rows = sorted(tuple(r) for r in spark.table(TABLE).collect())
    return rows, int(version["version"]), files


@pytest.mark.spark
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_flow_task_cannot_write_a_shared_input_catalog(samples: SparkSession, write: str) -> None:
    from pyspark.errors import AnalysisException

    before = _state(samples)
    with (
        session.task_tag(samples, f"test:{write}", read_only=["samples"]),
        pytest.raises(AnalysisException) as refused,
    ):
        WRITES[write](samples)
    lines = str(refused.value).strip().splitlines()
    assert lines[0] == MESSAGE
    if write != "DeltaTable.merge":  # checked only, not analyzed: Spark adds ";" and the plan
        assert lines == [MESSAGE]
    assert _state(samples) == before
    session.drain_writes(samples, f"test:{write}")


@pytest.mark.spark
def test_a_flow_task_still_reads_it_and_writes_its_own_tables(samples: SparkSession) -> None:
    own = "acme_transport_taxinyc.readonly_check_own"
    samples.sql(f"CREATE SCHEMA IF NOT EXISTS {own}")
    before = _state(samples)
    with session.task_tag(samples, "test:reads", read_only=["samples"]):
        assert samples.table(TABLE).count() == 1
        assert samples.read.parquet(f"{VOLUME}/trips").count() == 3
        samples.sql(f"DESCRIBE HISTORY {TABLE}").collect()
        samples.sql(f"CREATE OR REPLACE TABLE {own}.copy AS SELECT * FROM {TABLE}")
        samples.table(TABLE).write.mode("append").saveAsTable(f"{own}.copy")
        samples.sql(
            f"MERGE INTO {own}.copy t USING {TABLE} s ON t.trip_id = s.trip_id "
            "WHEN MATCHED THEN UPDATE SET fare = s.fare + 1"
        )
    assert session.drain_writes(samples, "test:reads") == [f"{own}.copy"]
    assert samples.table(f"{own}.copy").count() == 2
    assert _state(samples) == before
    samples.sql(f"DROP SCHEMA {own} CASCADE")


@pytest.mark.spark
def test_tools_and_set_up_write_it_outside_flow_tasks(samples: SparkSession) -> None:
    with session.task_tag(samples, "test:tool", read_only=["samples"]):
        with session.shared_inputs_writable(samples):  # what tools/taxigen.py does
            samples.sql(f"INSERT INTO {TABLE} VALUES (2, 3.0)")
        assert session.read_only_catalogs(samples) == {"samples"}  # restored after the block
    samples.sql(f"DELETE FROM {TABLE} WHERE trip_id = 2")  # no flow task: a test's set-up
    assert session.read_only_catalogs(samples) == frozenset()
    assert samples.table(TABLE).count() == 1
    session.drain_writes(samples, "test:tool")
    session.drain_writes(samples, "")


@pytest.mark.spark
def test_another_thread_outside_the_task_keeps_writing(samples: SparkSession) -> None:
    """A test's or tool's thread next to a running flow task is not a flow task."""
    inside = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    def task() -> None:
        try:
            with session.task_tag(samples, "test:concurrent", read_only=["samples"]):
                inside.set()
                done.wait(120)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=task)
    thread.start()
    try:
        assert inside.wait(60)
        samples.sql(f"INSERT INTO {TABLE} VALUES (3, 4.0)")
        samples.sql(f"DELETE FROM {TABLE} WHERE trip_id = 3")
    finally:
        done.set()
        thread.join()
    assert errors == []
    session.drain_writes(samples, "")


# ---- a flow run ------------------------------------------------------------------------------

WRITER = """# Databricks notebook source
# a notebook that "refreshes" the shared sample instead of writing a table of its own
spark.range(5).selectExpr("id AS trip_id", "1.0D AS fare").write.mode("overwrite").saveAsTable(
    "{table}"
)
"""
READER = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, dbname, tablename

catalog = catname_from_path()
spark.sql(f"CREATE SCHEMA IF NOT EXISTS {{dbname(db='sneaky', cat=catalog)}}")
spark.table("{table}").write.mode("overwrite").saveAsTable(
    tablename(tbl="trips_copy", db="sneaky", cat=catalog)
)
"""


@pytest.mark.spark
@pytest.mark.integration
def test_a_local_run_that_writes_samples_fails_with_one_line_and_changes_nothing(
    mesh_repo: Path, samples: SparkSession
) -> None:
    from meshops import context, discover
    from meshops.engine import flowrun

    flow = FlowDef(name="sneaky", tasks={"refresh_samples": (), "copy_samples": ()})
    folder = write_flow(mesh_repo, flow)
    (folder / "refresh_samples.py").write_text(WRITER.format(table=TABLE))
    (folder / "copy_samples.py").write_text(READER.format(table=TABLE))
    commit_all(mesh_repo, "a flow that writes samples")
    before = _state(samples)

    ctx = context.detect(mesh_repo, env="local", environ={})
    mesh = discover.scan(mesh_repo)
    options = flowrun.RunOptions(progress=False)
    result = flowrun.run_flow(ctx, mesh, mesh.find(flow.rel), options)

    tasks = {t.key: t for t in result.record.tasks}
    assert (tasks["refresh_samples"].status, tasks["copy_samples"].status) == (
        "FAILED",
        "SUCCESS",
    )
    error = tasks["refresh_samples"].error
    assert error is not None
    assert error.endswith(f"AnalysisException: {MESSAGE}")
    assert "\n" not in error
    assert tasks["refresh_samples"].attempts == 1
    assert result.tables() == {f"{result.names.schema}.trips_copy": 1}
    assert _state(samples) == before  # rows, Delta version and volume files as they were
    assert session.read_only_catalogs(samples) == frozenset()  # the test's own thread again
