"""Auto Loader (`cloudFiles`) on local Spark: each file once across runs, the schema inferred
and versioned under the schema location, evolution, rescued data, options, refusals.

Landing folders are volumes (`/Volumes/autoload/<test>/...`) of the test process's state dir;
every Spark test reads its own folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from meshops.engine import autoloader
from meshops.engine.autoloader import (
    AutoLoaderError,
    AutoLoaderIgnored,
    AutoLoaderOptions,
    SchemaStore,
    is_schema_change,
    schema_change,
)

# ---- without a JVM -----------------------------------------------------------------------


def parse(**options: str) -> AutoLoaderOptions:
    given = {"cloudFiles.format": "json", **options}
    return AutoLoaderOptions.parse("/Volumes/c/s/v/in", given, None)


@pytest.mark.unit
def test_an_unknown_cloudfiles_option_is_refused_by_name() -> None:
    with pytest.raises(
        AutoLoaderError, match=r"/Volumes/c/s/v/in: unknown option cloudFiles\.fooBar"
    ):
        parse(**{"cloudFiles.fooBar": "1"})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cloudFiles.format": "yaml"}, "cloudFiles.format is 'yaml'; expected one of json"),
        ({"cloudFiles.schemaEvolutionMode": "merge"}, "schemaEvolutionMode is 'merge'"),
        ({"cloudFiles.includeExistingFiles": "false"}, "includeExistingFiles=false is not"),
        ({"cloudFiles.maxFilesPerTrigger": "0"}, "maxFilesPerTrigger is '0'; expected a positive"),
        ({"cloudFiles.inferColumnTypes": "yes"}, "inferColumnTypes is 'yes'; expected true"),
        ({"cloudFiles.cleanSource": "MOVE"}, "MOVE needs cloudFiles.cleanSource.moveDestination"),
    ],
)
def test_bad_option_values_are_refused_naming_option_and_value(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(AutoLoaderError, match="Auto Loader on /Volumes/c/s/v/in: ") as raised:
        parse(**options)
    assert message in str(raised.value)


@pytest.mark.unit
def test_defaults_and_what_reaches_sparks_file_source() -> None:
    inferred = parse(**{"cloudFiles.schemaLocation": "/x", "header": "true"})
    assert inferred.evolution == "addNewColumns"
    assert inferred.rescued_column == "_rescued_data"
    assert inferred.source == {"maxFilesPerTrigger": "1000"}  # Databricks' default batch size
    assert inferred.reader == {"header": "true"}
    moved = parse(
        **{
            "cloudFiles.cleanSource": "MOVE",
            "cloudFiles.cleanSource.moveDestination": "/Volumes/c/s/v/done",
            "cloudFiles.maxBytesPerTrigger": "1048576",
        }
    )
    assert moved.source == {
        "maxBytesPerTrigger": "1048576",
        "cleanSource": "archive",
        "sourceArchiveDir": "/Volumes/c/s/v/done",
    }
    from pyspark.sql.types import StructType

    given = AutoLoaderOptions.parse("/in", {"cloudFiles.format": "csv"}, StructType([]))
    assert (given.evolution, given.rescued_column) == ("none", None)
    with pytest.raises(AutoLoaderError, match="addNewColumns needs an inferred schema"):
        AutoLoaderOptions.parse(
            "/in",
            {"cloudFiles.format": "csv", "cloudFiles.schemaEvolutionMode": "addNewColumns"},
            StructType([]),
        )


@pytest.mark.unit
def test_notification_options_are_accepted_with_a_warning() -> None:
    with pytest.warns(AutoLoaderIgnored, match="cloudFiles.useNotifications has no effect"):
        parse(**{"cloudFiles.useNotifications": "true"})


@pytest.mark.unit
def test_csv_records_map_header_names_to_text() -> None:
    options = AutoLoaderOptions.parse(
        "/in", {"cloudFiles.format": "csv", "header": "true", "nullValue": "NA"}, None
    )
    parser = autoloader._CsvParser.of(options)
    text = 'id,name,fare\n1,"two\nlines, quoted",1.5\n\n2,NA,,extra\n'
    assert parser(text) == [
        {"id": "1", "name": "two\nlines, quoted", "fare": "1.5"},
        {"id": "2", "name": None, "fare": None, "_c3": "extra"},
    ]
    assert parser.header_of(text) == ["id", "name", "fare"]


@pytest.mark.unit
def test_schema_versions_are_stored_like_auto_loaders(tmp_path: Path) -> None:
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    store = SchemaStore(str(tmp_path / "schema"))
    assert store.latest() is None
    first = StructType([StructField("id", LongType())])
    second = StructType([*first.fields, StructField("tip", StringType())])
    assert store.write(first, StructType([])) == 0
    assert store.write(second, StructType([])) == 1
    assert store.latest() == (1, second, StructType([]))
    lines = (tmp_path / "schema" / "_schemas" / "0").read_text().splitlines()
    assert lines[0] == "v1"
    assert json.loads(json.loads(lines[1])["dataSchemaJson"]) == json.loads(first.json())
    (tmp_path / "schema" / "_schemas" / "2").write_text("not a schema")
    with pytest.raises(AutoLoaderError, match=r"_schemas/2: not an Auto Loader schema file"):
        store.latest()


@pytest.mark.unit
def test_a_schema_change_is_told_from_other_stream_failures() -> None:
    raised = (
        "[USER_RAISED_EXCEPTION] [UNKNOWN_FIELDS] Auto Loader on /Volumes/c/s/v/in: new "
        "columns tip in file:/Volumes/c/s/v/in/b.json; restart the stream: the schema gets "
        "them at the next start SQLSTATE: P0001"
    )
    failed = RuntimeError("[STREAM_FAILED] Query terminated with exception")
    failed.__cause__ = RuntimeError(f"[TASK_WRITE_FAILED] Task failed\n{raised}\n\tat ...")
    assert (
        schema_change(failed) == raised[len("[USER_RAISED_EXCEPTION] ") : -len(" SQLSTATE: P0001")]
    )
    # the query's plan shows the check's text: not a schema change by itself
    plan = RuntimeError("... raise_error(concat([UNKNOWN_FIELDS] Auto Loader on /x: new columns")
    assert not is_schema_change(plan)


# ---- on the local session ----------------------------------------------------------------


def landing(state_dir: Path, test: str) -> tuple[Path, str]:
    """A folder of volume `autoload.<test>.v`: (its local path, its /Volumes path)."""
    local = state_dir / "volumes" / "autoload" / test / "v"
    local.mkdir(parents=True, exist_ok=True)
    return local, f"/Volumes/autoload/{test}/v"


def reader(spark: Any, file_format: str, schemas: str, **options: Any) -> Any:
    stream = (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", file_format)
        .option("cloudFiles.schemaLocation", schemas)
    )
    for key, value in options.items():
        stream = stream.option(key.replace("__", "."), value)
    return stream


def run(frame: Any, out: str) -> Any:
    """One run with trigger(availableNow=True) into the Delta folder `out`."""
    query = (
        frame.writeStream.format("delta")
        .option("mergeSchema", "true")
        .option("checkpointLocation", f"{out}_checkpoint")
        .trigger(availableNow=True)
        .start(out)
    )
    query.awaitTermination()
    return query


def rows(spark: Any, out: str, *columns: str) -> list[tuple[Any, ...]]:
    frame = spark.read.format("delta").load(out)
    return sorted(tuple(r) for r in frame.select(*columns).collect())


@pytest.mark.spark
def test_json_from_a_volume_each_file_once_schema_inferred_and_stored(
    spark: Any, meshops_state_dir: Path
) -> None:
    folder, path = landing(meshops_state_dir, "json_once")
    (folder / "in").mkdir()
    (folder / "in" / "t1.json").write_text('{"id": 1, "fare": 1.5, "day": "mon"}\n\n')
    schemas, out = f"{path}/_schemas_of_in", f"{path}/out"

    def stream() -> Any:
        return reader(spark, "json", schemas, cloudFiles__schemaHints="id BIGINT").load(
            f"{path}/in"
        )

    first = stream()
    # JSON columns are strings unless inferColumnTypes; the hint types id
    assert first.schema.simpleString() == (
        "struct<day:string,fare:string,id:bigint,_rescued_data:string>"
    )
    run(first, out)
    (folder / "in" / "t2.json").write_text('{"id": 2, "fare": 2.5, "day": "tue"}\n')
    run(stream(), out)
    run(stream(), out)  # nothing new: nothing read
    assert rows(spark, out, "id", "fare", "day", "_rescued_data") == [
        (1, "1.5", "mon", None),
        (2, "2.5", "tue", None),
    ]
    stored = folder / "_schemas_of_in" / "_schemas"
    assert sorted(p.name for p in stored.iterdir()) == ["0"]
    assert stored.joinpath("0").read_text().startswith("v1\n")


@pytest.mark.spark
def test_a_new_column_fails_the_batch_once_and_the_restart_takes_it(
    spark: Any, meshops_state_dir: Path
) -> None:
    folder, path = landing(meshops_state_dir, "evolve")
    (folder / "in").mkdir()
    (folder / "in" / "a.json").write_text('{"id": 1, "fare": 1.5}\n')
    schemas, out = f"{path}/schemas", f"{path}/out"

    def stream() -> Any:
        return reader(spark, "json", schemas, cloudFiles__inferColumnTypes=True).load(f"{path}/in")

    running = stream()
    # a file lands after the stream's schema was fixed: it brings `tip`, and a bad fare
    (folder / "in" / "b.json").write_text('{"id": 2, "fare": "bad", "tip": 0.5}\n')
    with pytest.raises(Exception) as failed:
        run(running, out)
    assert is_schema_change(failed.value)
    message = schema_change(failed.value)
    assert message is not None
    assert f"Auto Loader on {path}/in: new columns tip in file:{path}/in/b.json" in message
    run(stream(), out)  # the restart: the schema gets `tip`, and each file is read once
    found = rows(spark, out, "id", "fare", "tip", "_rescued_data")
    assert [r[:3] for r in found] == [(1, 1.5, None), (2, None, 0.5)]
    assert found[0][3] is None
    rescued = json.loads(found[1][3])
    assert rescued["fare"] == "bad"
    assert rescued["_file_path"].endswith(f"{path}/in/b.json")
    assert sorted(p.name for p in (folder / "schemas" / "_schemas").iterdir()) == ["0", "1"]


@pytest.mark.spark
def test_csv_rescue_mode_keeps_unknown_and_unparsable_fields(
    spark: Any, meshops_state_dir: Path
) -> None:
    folder, path = landing(meshops_state_dir, "csv_rescue")
    day = folder / "in" / "day=2024-01-01"
    day.mkdir(parents=True)
    (day / "a.csv").write_text('id,name,fare\n1,"two\nlines",1.5\n2,b,2\n')
    frame = reader(
        spark,
        "csv",
        f"{path}/schemas",
        header=True,
        multiLine=True,  # for Spark's inference; the stream reads CSV files whole anyway
        cloudFiles__inferColumnTypes=True,
        cloudFiles__schemaEvolutionMode="rescue",
        cloudFiles__partitionColumns="day",
    ).load(f"{path}/in")
    assert frame.schema.simpleString() == (
        "struct<id:int,name:string,fare:double,day:string,_rescued_data:string>"
    )
    (day / "b.csv").write_text("id,name,fare,extra\n3,c,notnum,x\n")
    run(frame.select("*", "_metadata.file_name"), f"{path}/out")
    found = rows(spark, f"{path}/out", "id", "name", "fare", "day", "file_name", "_rescued_data")
    assert [r[:5] for r in found] == [
        (1, "two\nlines", 1.5, "2024-01-01", "a.csv"),
        (2, "b", 2.0, "2024-01-01", "a.csv"),
        (3, "c", None, "2024-01-01", "b.csv"),
    ]
    assert found[0][5] is None and found[1][5] is None
    rescued = json.loads(found[2][5])
    assert {k: v for k, v in rescued.items() if k != "_file_path"} == {
        "fare": "notnum",
        "extra": "x",
    }


@pytest.mark.spark
def test_parquet_batches_of_max_files_per_trigger_and_new_columns_at_start(
    spark: Any, meshops_state_dir: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from delta.tables import DeltaTable

    folder, path = landing(meshops_state_dir, "parquet")
    (folder / "in").mkdir()
    pq.write_table(pa.table({"id": [1, 2], "x": ["a", "b"]}), folder / "in" / "p1.parquet")
    pq.write_table(pa.table({"id": [3], "x": ["c"], "y": [1.5]}), folder / "in" / "p2.parquet")
    pq.write_table(pa.table({"id": [4], "x": ["d"]}), folder / "in" / "p3.parquet")
    frame = reader(spark, "parquet", f"{path}/schemas", cloudFiles__maxFilesPerTrigger=1).load(
        f"{path}/in"
    )
    run(frame, f"{path}/out")
    assert rows(spark, f"{path}/out", "id", "x", "y") == [
        (1, "a", None),
        (2, "b", None),
        (3, "c", 1.5),
        (4, "d", None),
    ]
    history = DeltaTable.forPath(spark, f"{path}/out").history().collect()
    assert sum(h.operation == "STREAMING UPDATE" for h in history) == 3  # one file a batch


@pytest.mark.spark
def test_reader_options_pass_through_and_other_formats_are_untouched(
    spark: Any, meshops_state_dir: Path
) -> None:
    folder, path = landing(meshops_state_dir, "options")
    (folder / "in").mkdir()
    (folder / "in" / "many.json").write_text('[\n {"id": 1},\n {"id": 2}\n]\n')
    frame = reader(spark, "json", f"{path}/schemas", multiLine=True).load(f"{path}/in")
    run(frame, f"{path}/out")
    assert rows(spark, f"{path}/out", "id") == [("1",), ("2",)]
    text = spark.readStream.format("text").load(f"{path}/in")
    assert text.columns == ["value"]
    assert autoloader.installed()


@pytest.mark.spark
def test_a_stream_that_cannot_start_says_why(spark: Any, meshops_state_dir: Path) -> None:
    folder, path = landing(meshops_state_dir, "refused")
    (folder / "empty").mkdir()
    with pytest.raises(AutoLoaderError, match=r"unknown option cloudFiles\.schemaLocaton"):
        spark.readStream.format("cloudFiles").option("cloudFiles.format", "json").option(
            "cloudFiles.schemaLocaton", "/x"
        ).load(f"{path}/empty")
    with pytest.raises(AutoLoaderError, match="set cloudFiles.schemaLocation to infer"):
        spark.readStream.format("cloudFiles").option("cloudFiles.format", "json").load(
            f"{path}/empty"
        )
    with pytest.raises(AutoLoaderError, match="no files to infer the schema from"):
        reader(spark, "json", f"{path}/schemas").load(f"{path}/empty")
    # with a schema given nothing is inferred; the rescued column comes when asked for
    given = (
        spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "json")
        .option("rescuedDataColumn", "_bad")
        .schema("id INT")
        .load(f"{path}/empty")
    )
    assert given.columns == ["id", "_bad"]


@pytest.mark.spark
def test_fail_on_new_columns_and_schema_locations_a_pipeline_manages(
    spark: Any, meshops_state_dir: Path
) -> None:
    folder, path = landing(meshops_state_dir, "fail_new")
    (folder / "in").mkdir()
    (folder / "in" / "a.json").write_text('{"id": 1}\n')
    strict = {"cloudFiles__schemaEvolutionMode": "failOnNewColumns"}
    reader(spark, "json", f"{path}/schemas", **strict).load(f"{path}/in")
    (folder / "in" / "b.json").write_text('{"id": 2, "tip": 0.5}\n')
    with pytest.raises(AutoLoaderError, match=r"new columns \['tip'\] and schemaEvolutionMode"):
        reader(spark, "json", f"{path}/schemas", **strict).load(f"{path}/in")
    # a pipeline's streams need no schema location: the pipeline names a folder for them
    spark.conf.set(autoloader.MANAGED_SCHEMAS, str(folder / "managed"))
    try:
        frame = (
            spark.readStream.format("cloudFiles")
            .option("cloudFiles.format", "json")
            .load(f"{path}/in")
        )
    finally:
        spark.conf.unset(autoloader.MANAGED_SCHEMAS)
    assert frame.columns == ["id", "tip", "_rescued_data"]
    assert [p.name for p in (folder / "managed").glob("*/_schemas/*")] == ["0"]


# ---- across processes --------------------------------------------------------------------

RUN_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    from meshops.engine.session import SessionOptions, get_spark
    from meshops.state import StatePaths

    state, jars, pids = (Path(a) for a in sys.argv[1:4])
    kill_at = int(sys.argv[4])
    spark = get_spark(SessionOptions(state=StatePaths(state), mode="local", jar_cache=jars))
    with pids.open("a") as handle:  # the JVM outlives a killed Python for a moment
        handle.write(f"{spark.sparkContext._gateway.proc.pid}\\n")
    OUT = "/Volumes/c/s/v/bronze"

    def write(batch, batch_id):
        # Delta's idempotent writes: a batch replayed after a crash is not written twice
        (batch.write.format("delta").mode("append")
            .option("txnAppId", "bronze").option("txnVersion", batch_id).save(OUT))
        if batch_id == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # written, not committed: killed mid-way

    frame = (spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "json")
        .option("cloudFiles.schemaLocation", "/Volumes/c/s/v/_schemas/bronze")
        .option("cloudFiles.maxFilesPerTrigger", 1)
        .load("/Volumes/c/s/v/landing"))
    query = (frame.writeStream.foreachBatch(write)
        .option("checkpointLocation", "/Volumes/c/s/v/_checkpoints/bronze")
        .trigger(availableNow=True).start())
    query.awaitTermination()
    """
)


def _wait_gone(pid: int) -> None:
    """Wait until the JVM of a killed run has exited (it holds the state dir's files)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.integration
def test_each_file_once_across_three_runs_one_killed_mid_way(
    spark: Any, tmp_path: Path, meshops_repo_root: Path
) -> None:
    state = tmp_path / "state"
    landing_dir = state / "volumes" / "c" / "s" / "v" / "landing"
    landing_dir.mkdir(parents=True)
    script = tmp_path / "bronze.py"
    script.write_text(RUN_SCRIPT)
    pids = tmp_path / "jvm.pids"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("SPARK_REMOTE", None)

    def drop(name: str, *ids: int) -> None:
        lines = "".join(json.dumps({"id": i, "file": name}) + "\n" for i in ids)
        (landing_dir / f"{name}.json").write_text(lines)

    def run_bronze(kill_at: int = -1) -> int:
        jars = meshops_repo_root / ".meshops" / "jars"
        args = [sys.executable, str(script), str(state), str(jars), str(pids), str(kill_at)]
        done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True)
        for pid in pids.read_text().split():
            _wait_gone(int(pid))
        pids.unlink()
        return done.returncode

    drop("f1", 1, 2)
    drop("f2", 3)
    assert run_bronze() == 0  # batches 0 and 1
    drop("f3", 4)
    drop("f4", 5, 6)
    drop("f5", 7)
    assert run_bronze(kill_at=3) == -signal.SIGKILL  # f3 committed; f4 written, then killed
    drop("f6", 8)
    assert run_bronze() == 0  # f4's batch again (its write is skipped), then f5 and f6

    bronze = spark.read.format("delta").load(str(state / "volumes" / "c" / "s" / "v" / "bronze"))
    assert sorted((r.file, int(r.id)) for r in bronze.collect()) == [
        ("f1", 1),
        ("f1", 2),
        ("f2", 3),
        ("f3", 4),
        ("f4", 5),
        ("f4", 6),
        ("f5", 7),
        ("f6", 8),
    ]
    writes = spark.sql(f"DESCRIBE HISTORY delta.`{state}/volumes/c/s/v/bronze`").collect()
    assert sum(w.operation == "WRITE" for w in writes) == 6  # one per file; f4's not twice
