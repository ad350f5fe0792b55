"""Three-level names on the shared local session: what notebooks do to Unity Catalog tables.

Every test works in its own schemas of two catalogs, `samples` and
`acme_transport_taxinyc`, so the same schema name exists in both and must stay apart.
"""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.errors import AnalysisException, IllegalArgumentException
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from meshops.engine import session
from meshops.errors import InvalidInput, MeshopsError
from meshops.state import StatePaths

pytestmark = pytest.mark.spark

SAMPLES = "samples"
ACME = "acme_transport_taxinyc"


@pytest.fixture(scope="module")
def uc(spark: SparkSession) -> SparkSession:
    session.register_catalogs(spark, [SAMPLES, ACME])
    return spark


@pytest.fixture
def schema(uc: SparkSession, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh schema of this test's name in both catalogs."""
    name = "jvm_" + request.node.name.removeprefix("test_")[:40]
    for catalog in (SAMPLES, ACME):
        uc.sql(f"DROP SCHEMA IF EXISTS {catalog}.{name} CASCADE")
        uc.sql(f"CREATE SCHEMA IF NOT EXISTS {catalog}.{name}")
    yield name
    uc.sql("USE spark_catalog.default")


def state() -> StatePaths:
    options = session.active_options()
    assert options is not None
    return StatePaths(options.state.root.resolve())


def rows(df: DataFrame) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in df.collect())


def test_same_schema_in_two_catalogs_stays_apart(uc: SparkSession, schema: str) -> None:
    uc.sql(f"CREATE SCHEMA IF NOT EXISTS {SAMPLES}.{schema}")  # again: no error
    trips = uc.createDataFrame([(1, "bronx"), (2, "queens")], "id int, borough string")
    trips.write.saveAsTable(f"{SAMPLES}.{schema}.trips")
    uc.createDataFrame([(9, "x")], "id int, borough string").write.saveAsTable(
        f"{ACME}.{schema}.trips"
    )

    assertDataFrameEqual(uc.table(f"{SAMPLES}.{schema}.trips"), trips)
    assert rows(uc.sql(f"SELECT id FROM {ACME}.{schema}.trips")) == [(9,)]
    assert (schema,) in rows(uc.sql(f"SHOW SCHEMAS IN {SAMPLES}"))
    assert [r.tableName for r in uc.sql(f"SHOW TABLES IN {ACME}.{schema}").collect()] == ["trips"]
    assert uc.catalog.tableExists(f"{SAMPLES}.{schema}.trips")
    assert not uc.catalog.tableExists(f"{SAMPLES}.{schema}.nothing")
    # stored as metastore databases <catalog>__<schema>, in the state folder's warehouse
    databases = {r[0] for r in uc.sql("SHOW SCHEMAS IN spark_catalog").collect()}
    assert {f"{SAMPLES}__{schema}", f"{ACME}__{schema}"} <= databases
    assert (state().warehouse / f"{SAMPLES}__{schema}.db" / "trips").is_dir()
    assert {SAMPLES, ACME} <= session.known_catalogs(uc)


def test_save_as_table_modes(uc: SparkSession, schema: str) -> None:
    name = f"{ACME}.{schema}.t"
    first = uc.createDataFrame([(1, "a")], "id int, v string")
    first.write.saveAsTable(name)
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_ALREADY_EXISTS"):
        first.write.saveAsTable(name)
    first.write.mode("ignore").saveAsTable(name)
    assert uc.table(name).count() == 1

    uc.createDataFrame([("b", 2)], "v string, id int").write.mode("append").saveAsTable(name)
    assert rows(uc.table(name)) == [(1, "a"), (2, "b")]  # appended by column name

    other = uc.createDataFrame([(1.5,)], "x double")
    # a Delta table keeps its schema on overwrite unless told otherwise, as on Databricks
    with pytest.raises(AnalysisException, match="DELTA_METADATA_MISMATCH"):
        other.write.mode("overwrite").saveAsTable(name)
    other.write.mode("overwrite").option("overwriteSchema", "true").saveAsTable(name)
    assertDataFrameEqual(uc.table(name), other)


def test_sql_and_insert_writes(uc: SparkSession, schema: str) -> None:
    t = f"{SAMPLES}.{schema}.t"
    uc.sql(f"CREATE TABLE {t} AS SELECT 1 AS id, 'a' AS v")
    uc.sql(f"INSERT INTO {t} VALUES (2, 'b')")
    uc.createDataFrame([(3, "c")], "id int, v string").write.insertInto(t)
    assert rows(uc.table(t)) == [(1, "a"), (2, "b"), (3, "c")]

    uc.sql(f"INSERT OVERWRITE {t} SELECT 4, 'd'")
    assert rows(uc.table(t)) == [(4, "d")]
    uc.sql(f"CREATE OR REPLACE TABLE {t} AS SELECT 5 AS n")
    assert rows(uc.table(t)) == [(5,)]
    uc.sql(f"TRUNCATE TABLE {t}")
    assert uc.table(t).count() == 0

    e = f"{SAMPLES}.{schema}.e"
    uc.sql(f"CREATE TABLE {e} (id INT, v STRING) COMMENT 'empty at first'")
    uc.sql(f"INSERT INTO {e} VALUES (1, 'x')")
    uc.sql(f"ALTER TABLE {e} ADD COLUMN w DOUBLE")
    assert uc.table(e).columns == ["id", "v", "w"]
    details = {r.col_name: r.data_type for r in uc.sql(f"DESCRIBE TABLE EXTENDED {e}").collect()}
    assert (details["Catalog"], details["Database"], details["Provider"]) == (
        SAMPLES,
        schema,
        "delta",
    )


def test_partitioned_tables(uc: SparkSession, schema: str) -> None:
    t = f"{ACME}.{schema}.trips"
    df = uc.createDataFrame([(i, f"v{i}", i % 3) for i in range(6)], "id int, v string, p int")
    df.write.partitionBy("p").saveAsTable(t)
    df.write.mode("append").partitionBy("p").saveAsTable(t)
    assert uc.table(t).count() == 12
    assert uc.table(t).where("p = 1").count() == 4
    folder = state().warehouse / f"{ACME}__{schema}.db" / "trips"
    assert sorted(p.name for p in folder.glob("p=*")) == ["p=0", "p=1", "p=2"]

    df.where("p = 2").write.mode("overwrite").partitionBy("p").saveAsTable(t)
    assert rows(uc.table(t).select("id")) == [(2,), (5,)]
    uc.sql(f"INSERT INTO {t} VALUES (7, 'v7', 7)")  # partition columns come last locally
    assert uc.table(t).columns == ["id", "v", "p"]
    assert rows(uc.table(t).where("p = 7")) == [(7, "v7", 7)]


def test_dataframe_writer_v2(uc: SparkSession, schema: str) -> None:
    t = f"{SAMPLES}.{schema}.w"
    df = uc.createDataFrame([(1, 0), (2, 1)], "id int, p int")
    df.writeTo(t).create()
    df.writeTo(t).append()
    assert uc.table(t).count() == 4
    df.limit(1).writeTo(t).createOrReplace()
    assert uc.table(t).count() == 1
    df.writeTo(f"{SAMPLES}.{schema}.wp").partitionedBy(df.p).create()
    assert uc.table(f"{SAMPLES}.{schema}.wp").count() == 2
    # Delta overwrites just the partitions the rows fall in
    uc.createDataFrame([(9, 1)], "id int, p int").writeTo(
        f"{SAMPLES}.{schema}.wp"
    ).overwritePartitions()
    assert rows(uc.table(f"{SAMPLES}.{schema}.wp")) == [(1, 0), (9, 1)]


def test_use_schema_then_short_names(uc: SparkSession, schema: str) -> None:
    uc.sql(f"USE {ACME}.{schema}")
    uc.range(3).write.saveAsTable("t")
    uc.sql("CREATE TABLE t2 AS SELECT * FROM t")
    assert (uc.catalog.currentCatalog(), uc.catalog.currentDatabase()) == (ACME, schema)
    assert uc.table(f"{schema}.t2").count() == 3
    uc.sql("USE spark_catalog.default")
    assert uc.table(f"{ACME}.{schema}.t").count() == 3
    assert not uc.catalog.tableExists(f"{SAMPLES}.{schema}.t")


def test_drop_table_and_schema(uc: SparkSession, schema: str) -> None:
    uc.range(1).write.saveAsTable(f"{SAMPLES}.{schema}.a")
    uc.range(1).write.saveAsTable(f"{SAMPLES}.{schema}.b")
    uc.sql(f"DROP TABLE {SAMPLES}.{schema}.a")
    uc.sql(f"DROP TABLE IF EXISTS {SAMPLES}.{schema}.a")
    assert [r.tableName for r in uc.sql(f"SHOW TABLES IN {SAMPLES}.{schema}").collect()] == ["b"]
    with pytest.raises(AnalysisException, match="SCHEMA_NOT_EMPTY"):
        uc.sql(f"DROP SCHEMA {SAMPLES}.{schema}")
    uc.sql(f"DROP SCHEMA {SAMPLES}.{schema} CASCADE")
    assert (schema,) not in rows(uc.sql(f"SHOW SCHEMAS IN {SAMPLES}"))
    assert (schema,) in rows(uc.sql(f"SHOW SCHEMAS IN {ACME}"))
    assert not (state().warehouse / f"{SAMPLES}__{schema}.db").exists()
    with pytest.raises(AnalysisException, match="SCHEMA_NOT_FOUND"):
        uc.range(1).write.saveAsTable(f"{SAMPLES}.{schema}.c")


def test_views(uc: SparkSession, schema: str) -> None:
    uc.createDataFrame([(1,), (2,)], "id int").write.saveAsTable(f"{ACME}.{schema}.t")
    uc.createDataFrame([(10,)], "id int").write.saveAsTable(f"{SAMPLES}.{schema}.t")
    uc.sql(f"USE {ACME}.{schema}")
    # short names inside the view resolve where it was created, wherever it is read from
    uc.sql("CREATE VIEW v (n COMMENT 'doubled') AS SELECT id * 2 AS n FROM t")
    uc.sql(f"USE {SAMPLES}.{schema}")
    assert rows(uc.table(f"{ACME}.{schema}.v")) == [(2,), (4,)]
    assert not uc.catalog.tableExists(f"{SAMPLES}.{schema}.v")

    uc.sql(f"CREATE OR REPLACE VIEW {ACME}.{schema}.v AS SELECT max(id) AS m FROM t")
    assert rows(uc.table(f"{ACME}.{schema}.v")) == [(10,)]  # created while in samples
    uc.sql(f"ALTER VIEW {ACME}.{schema}.v RENAME TO {ACME}.{schema}.v2")
    listed = {(t.name, t.tableType) for t in uc.catalog.listTables(f"{ACME}.{schema}")}
    assert listed == {("t", "MANAGED"), ("v2", "VIEW")}
    assert [r.viewName for r in uc.sql(f"SHOW VIEWS IN {ACME}.{schema}").collect()] == ["v2"]
    with pytest.raises(AnalysisException, match="WRONG_COMMAND_FOR_OBJECT_TYPE"):
        uc.sql(f"DROP TABLE {ACME}.{schema}.v2")
    uc.sql(f"DROP VIEW {ACME}.{schema}.v2")
    assert uc.sql(f"SHOW VIEWS IN {ACME}.{schema}").count() == 0


def test_row_level_commands_on_a_non_delta_table_say_what_to_do(
    uc: SparkSession, schema: str
) -> None:
    t = f"{ACME}.{schema}.t"
    uc.sql(f"CREATE TABLE {t} USING PARQUET AS SELECT 1 AS id")
    for statement in (
        f"MERGE INTO {t} d USING (SELECT 1 AS id) s ON d.id = s.id WHEN MATCHED THEN DELETE",
        f"UPDATE {t} SET id = 2",
        f"DELETE FROM {t} WHERE id = 1",
    ):
        with pytest.raises(IllegalArgumentException) as caught:
            uc.sql(statement)
        assert "need a Delta table, and" in str(caught.value)
        assert f"{t} is parquet: recreate it as Delta" in str(caught.value)
    assert rows(uc.table(t)) == [(1,)]


def test_writes_are_recorded_per_task_also_from_threads(uc: SparkSession, schema: str) -> None:
    session.drain_writes(uc, "")  # forget untagged writes of earlier tests
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def task(tag: str) -> None:
        try:
            with session.task_tag(uc, tag):
                start.wait()
                uc.range(5).write.mode("overwrite").saveAsTable(f"{SAMPLES}.{schema}.{tag}_a")
                uc.sql(f"CREATE OR REPLACE TABLE {ACME}.{schema}.{tag}_b AS SELECT 1 AS x")
                uc.sql(f"INSERT INTO {ACME}.{schema}.{tag}_b VALUES (2)")
                uc.table(f"{SAMPLES}.{schema}.{tag}_a").count()  # reads are not writes
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=task, args=(tag,)) for tag in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    for tag in ("one", "two"):
        assert session.drain_writes(uc, tag) == [
            f"{SAMPLES}.{schema}.{tag}_a",
            f"{ACME}.{schema}.{tag}_b",
        ]
        assert session.drain_writes(uc, tag) == []  # drained
    uc.range(1).write.saveAsTable(f"{ACME}.{schema}.untagged")
    assert session.drain_writes(uc, "") == [f"{ACME}.{schema}.untagged"]


def test_volume_paths(uc: SparkSession, schema: str) -> None:
    landing = state().volumes / SAMPLES / schema / "landing"
    landing.mkdir(parents=True)
    (landing / "trips.csv").write_text("id,borough\n1,bronx\n2,queens\n")
    volume = f"/Volumes/{SAMPLES}/{schema}/landing"

    trips = uc.read.option("header", True).csv(f"{volume}/trips.csv")
    assert rows(trips) == [("1", "bronx"), ("2", "queens")]
    assert uc.read.option("header", True).csv(volume).count() == 2  # a folder too
    path = trips.select("_metadata.file_path").first()[0]  # type: ignore[index]
    assert path == f"file:{volume}/trips.csv"

    trips.write.parquet(f"{volume}/out")
    assert list((landing / "out").glob("part-*.parquet"))
    assert uc.read.parquet(f"{volume}/out").count() == 2
    uc.sql(f"CREATE TABLE {SAMPLES}.{schema}.ext USING parquet LOCATION '{volume}/out'")
    assert uc.table(f"{SAMPLES}.{schema}.ext").count() == 2
    assert not Path("/Volumes", SAMPLES, schema).exists()  # nothing outside the state dir


def test_session_is_one_per_process(uc: SparkSession, tmp_path: Path) -> None:
    options = session.active_options()
    assert options is not None
    again = session.get_spark(
        session.SessionOptions(state=options.state, catalogs=("zz_registered_late",))
    )
    assert again is uc
    assert session.mode(uc) == "local"
    assert uc.conf.get("spark.sql.catalog.zz_registered_late") == session.CATALOG_CLASS
    session.register_catalogs(uc, ["zz_registered_late"])  # idempotent
    assert "zz_registered_late" in session.known_catalogs(uc)
    with pytest.raises(InvalidInput, match="catalog name 'Bad'"):
        session.register_catalogs(uc, ["Bad"])
    with pytest.raises(MeshopsError, match="one session per process"):
        session.get_spark(session.SessionOptions(state=StatePaths(tmp_path)))


def test_the_embedded_jvm_stops_at_the_quick_compiler(uc: SparkSession) -> None:
    """A process's own session is short-lived: its JVM runs with C1 only (half the CPU of a
    flow run on sample data); the warm engine, which lives on, keeps the full compiler."""
    jvm = uc.sparkContext._jvm  # type: ignore[attr-defined]
    arguments = list(
        jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()
    )
    assert session.QUICK_JIT in arguments
