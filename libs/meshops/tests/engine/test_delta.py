"""Delta Lake on three-level names: the local session's table format, as on Databricks.

The notebook-shaped corpus (libs/meshops/tests/compat) covers each construct as users write it;
these tests pin the catalog plugin's part: what reaches Delta, and what Delta hands back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from meshops.engine import session

pytestmark = pytest.mark.spark

CATALOG = "acme_delta"


@pytest.fixture
def schema(spark: SparkSession, request: pytest.FixtureRequest) -> Iterator[str]:
    session.register_catalogs(spark, [CATALOG])
    name = f"{CATALOG}.d_{request.node.name.removeprefix('test_')[:40]}"
    spark.sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    spark.sql(f"CREATE SCHEMA {name}")
    yield name
    spark.sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def detail(spark: SparkSession, table: str) -> dict[str, object]:
    return spark.sql(f"DESCRIBE DETAIL {table}").first().asDict()  # type: ignore[union-attr]


def operations(spark: SparkSession, table: str) -> list[str]:
    history = spark.sql(f"DESCRIBE HISTORY {table}").orderBy("version").collect()
    return [row.operation for row in history]


def test_tables_are_delta_by_default_in_every_way_they_are_made(
    spark: SparkSession, schema: str
) -> None:
    spark.range(3).write.saveAsTable(f"{schema}.saved")
    spark.sql(f"CREATE TABLE {schema}.ddl (id BIGINT)")
    spark.sql(f"CREATE TABLE {schema}.ctas AS SELECT 1 AS id")
    spark.range(2).writeTo(f"{schema}.v2").create()
    spark.range(2).write.format("delta").saveAsTable(f"{schema}.explicit")
    for table in ("saved", "ddl", "ctas", "v2", "explicit"):
        assert detail(spark, f"{schema}.{table}")["format"] == "delta", table
    # other formats stay available
    spark.range(2).write.format("parquet").saveAsTable(f"{schema}.pq")
    assert spark.table(f"{schema}.pq").count() == 2


def test_overwrite_is_a_new_version_and_old_ones_stay_readable(
    spark: SparkSession, schema: str
) -> None:
    table = f"{schema}.t"
    spark.range(3).write.mode("overwrite").saveAsTable(table)
    spark.range(5).write.mode("overwrite").saveAsTable(table)
    spark.sql(f"CREATE OR REPLACE TABLE {table} AS SELECT id FROM range(7)")
    assert operations(spark, table) == [
        "CREATE OR REPLACE TABLE AS SELECT",
        "CREATE OR REPLACE TABLE AS SELECT",
        "CREATE OR REPLACE TABLE AS SELECT",
    ]
    assert spark.read.option("versionAsOf", 0).table(table).count() == 3
    assert spark.sql(f"SELECT count(*) FROM {table} VERSION AS OF 1").first()[0] == 5  # type: ignore[index]
    assert spark.table(table).count() == 7
    spark.sql(f"RESTORE TABLE {table} TO VERSION AS OF 0")
    assert spark.table(table).count() == 3


def test_merge_update_delete_in_sql_and_through_the_python_api(
    spark: SparkSession, schema: str
) -> None:
    table = f"{schema}.trips"
    spark.createDataFrame([(1, 10.0), (2, 20.0)], "id int, fare double").write.saveAsTable(table)
    spark.sql(
        f"MERGE INTO {table} t USING (SELECT 2 AS id, 25.0 AS fare UNION ALL SELECT 3, 30.0) s "
        "ON t.id = s.id WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )
    updates = spark.createDataFrame([(3, 31.0), (4, 40.0)], "id int, fare double")
    (
        DeltaTable.forName(spark, table)
        .alias("t")
        .merge(updates.alias("s"), "t.id = s.id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    spark.sql(f"UPDATE {table} SET fare = 0 WHERE id = 1")
    spark.sql(f"DELETE FROM {table} WHERE id = 4")
    expected = spark.createDataFrame([(1, 0.0), (2, 25.0), (3, 31.0)], "id int, fare double")
    assertDataFrameEqual(spark.table(table), expected)
    assert operations(spark, table)[1:] == ["MERGE", "MERGE", "UPDATE", "DELETE"]


def test_liquid_clustering_from_sql_and_from_the_writer(spark: SparkSession, schema: str) -> None:
    spark.sql(f"CREATE TABLE {schema}.sql_clustered (b STRING, n INT) CLUSTER BY (b)")
    spark.range(4).selectExpr("id", "id % 2 AS b").write.clusterBy("b").saveAsTable(
        f"{schema}.written"
    )
    assert detail(spark, f"{schema}.sql_clustered")["clusteringColumns"] == ["b"]
    assert detail(spark, f"{schema}.written")["clusteringColumns"] == ["b"]
    spark.sql(f"OPTIMIZE {schema}.written")
    assert operations(spark, f"{schema}.written")[-1] == "OPTIMIZE"


def test_change_data_feed_by_name(spark: SparkSession, schema: str) -> None:
    table = f"{schema}.feed"
    spark.sql(
        f"CREATE TABLE {table} (id INT, v STRING) TBLPROPERTIES (delta.enableChangeDataFeed = true)"
    )
    spark.sql(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')")
    spark.sql(f"UPDATE {table} SET v = 'c' WHERE id = 2")
    changes = spark.sql(f"SELECT id, v, _change_type FROM table_changes('{table}', 1)")
    assert sorted(tuple(r) for r in changes.collect()) == [
        (1, "a", "insert"),
        (2, "b", "insert"),
        (2, "b", "update_preimage"),
        (2, "c", "update_postimage"),
    ]
    feed = spark.read.option("readChangeFeed", "true").option("startingVersion", 2).table(table)
    assert feed.count() == 2


def test_writes_through_delta_are_recorded_for_the_run_summary(
    spark: SparkSession, schema: str
) -> None:
    tag = "test-delta-writes"
    with session.task_tag(spark, tag):
        spark.range(2).write.saveAsTable(f"{schema}.a")
        spark.sql(f"CREATE TABLE {schema}.b AS SELECT 1 AS id")
        spark.sql(
            f"MERGE INTO {schema}.a t USING {schema}.b s ON t.id = s.id WHEN MATCHED THEN DELETE"
        )
    assert session.drain_writes(spark, tag) == [f"{schema}.a", f"{schema}.b"]


def test_link_status_and_permissions_without_a_process(spark: SparkSession, tmp_path: Path) -> None:
    """Delta's log store renames each commit file through FileContext, which asks the link
    status of both ends: the local file system answers it without starting `readlink`."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(plain)
    context = jvm.org.apache.hadoop.fs.FileContext.getLocalFSFileContext()
    path = jvm.org.apache.hadoop.fs.Path
    status = context.getFileLinkStatus(path(plain.as_uri()))
    assert (status.isFile(), status.isSymlink(), status.getLen()) == (True, False, 2)
    # a symbolic link is left to Hadoop, which (reading the link of the `file:` URI's text)
    # reports the file it points at
    status = context.getFileLinkStatus(path(link.as_uri()))
    assert (status.isFile(), status.getLen()) == (True, 2)
    with pytest.raises(Exception, match="FileNotFoundException"):
        context.getFileLinkStatus(path((tmp_path / "missing").as_uri()))
    # permissions too are set in the JVM, without a `chmod` process (a sticky bit: by Hadoop)
    fs = jvm.org.apache.hadoop.fs.FileSystem.getLocal(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    for octal in ("640", "1755"):
        fs.setPermission(
            path(plain.as_uri()), jvm.org.apache.hadoop.fs.permission.FsPermission(octal)
        )
        assert oct(plain.stat().st_mode & 0o7777) == f"0o{octal}"
    # a whole table's commits, through the same rename
    spark.range(3).write.format("delta").save(str(tmp_path / "table"))
    spark.range(2).write.format("delta").mode("overwrite").save(str(tmp_path / "table"))
    assert spark.read.format("delta").load(str(tmp_path / "table")).count() == 2
