"""Streaming tables: incremental updates, append flows, a materialized view over a stream,
exactly-once across updates (an update killed mid-way included) and full refresh."""

from __future__ import annotations

from typing import Any

import pytest

from meshops.engine import session
from meshops.pipelines import update
from meshops.pipelines.errors import ExpectationViolation, PipelineError

pytestmark = pytest.mark.spark

EVENTS = "id INT, kind STRING, amount DOUBLE"

SOURCE = """
# Databricks notebook source
import dlt
from pyspark import pipelines as dp
from pyspark.sql import functions as F


@dlt.table(comment="events as they came")
def bronze():
    return spark.readStream.table("events_raw")


@dlt.table
@dlt.expect_or_drop("known_kind", "kind IN ('click', 'view')")
def silver():
    return dlt.read_stream("bronze").withColumn("double", F.col("amount") * 2)


dp.create_streaming_table("all_events")


@dp.append_flow(target="all_events")
def from_silver():
    return spark.readStream.table("LIVE.silver").select("id", "kind")


@dp.append_flow(target="all_events", name="from_archive")
def archive():
    return spark.readStream.table("archive_raw").select("id", "kind")


@dp.materialized_view
def kinds():
    return spark.read.table("silver").groupBy("kind").agg(F.count("*").alias("n"))
"""


def flow_progress(bed: Any, update_id: str) -> dict[str, dict[str, Any]]:
    """flow name -> details.flow_progress of one update's flow_progress events."""
    return {
        e["origin"]["flow_name"]: e["details"]["flow_progress"]
        for e in bed.events("flow_progress")
        if e["origin"]["update_id"] == update_id
    }


def test_updates_take_only_new_rows_and_a_full_refresh_takes_all(bed) -> None:
    bed.write("events_raw", [(1, "click", 1.0), (2, "view", 2.0), (3, "bogus", 3.0)], EVENTS)
    bed.write("archive_raw", [(100, "click", 0.0)], EVENTS)
    source = bed.source("events.py", SOURCE)

    with session.task_tag(bed.spark, "pipeline-task"):  # as a job task runs it
        first = bed.run(source)
    # the writes of micro-batches (run on py4j's threads) count as the task's too
    written = {name.rsplit(".", 1)[-1] for name in session.drain_writes(bed.spark, "pipeline-task")}
    assert {"bronze", "silver", "all_events", "kinds"} <= written
    assert bed.rows("bronze", "id") == [(1,), (2,), (3,)]
    assert bed.rows("silver", "id", "double") == [(1, 2.0), (2, 4.0)]
    assert bed.rows("all_events") == [(1, "click"), (2, "view"), (100, "click")]
    assert bed.rows("kinds") == [("click", 1), ("view", 1)]
    known = first.expectation("silver", "known_kind")
    assert (known.passed_records, known.failed_records) == (2, 1)

    bed.write("events_raw", [(4, "click", 4.0), (5, "other", 5.0)], EVENTS)
    second = bed.run(source)
    assert bed.rows("bronze", "id") == [(1,), (2,), (3,), (4,), (5,)]
    assert bed.rows("all_events", "id") == [(1,), (2,), (4,), (100,)]
    assert bed.rows("kinds") == [("click", 2), ("view", 1)]
    # the second update read only what was new
    assert {d.name: d.rows_written for d in second.datasets} == {
        "bronze": 2,
        "silver": 1,
        "all_events": 1,
        "kinds": 2,
    }
    progress = flow_progress(bed, second.update_id)
    assert progress["from_silver"]["metrics"]["num_output_rows"] == 1
    assert progress["from_archive"]["metrics"]["num_output_rows"] == 0
    assert progress["silver"]["data_quality"] == {
        "dropped_records": 1,
        "expectations": [
            {"name": "known_kind", "dataset": "silver", "passed_records": 1, "failed_records": 1}
        ],
    }
    states = [
        e["details"]["update_progress"]["state"]
        for e in bed.events("update_progress")
        if e["origin"]["update_id"] == second.update_id
    ]
    assert states == ["RUNNING", "COMPLETED"]

    refreshed = bed.run(source, full_refresh=True)
    assert bed.rows("bronze", "id") == [(1,), (2,), (3,), (4,), (5,)]
    assert bed.rows("all_events", "id") == [(1,), (2,), (4,), (100,)]
    assert refreshed.rows("bronze") == 5
    assert refreshed.expectation("silver", "known_kind").failed_records == 2
    # the event log outlives a full refresh
    assert {e["origin"]["update_id"] for e in bed.events("create_update")} == {
        first.update_id,
        second.update_id,
        refreshed.update_id,
    }


def test_an_update_killed_mid_way_then_rerun_writes_each_row_once(
    bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    bed.write("events_raw", [(1, "click", 1.0), (2, "view", 2.0)], EVENTS)
    bed.write("events_raw", [(3, "click", 3.0)], EVENTS)
    source = bed.source(
        "bronze.py",
        """
        import dlt

        @dlt.table
        def bronze():
            # one file per micro-batch: two batches
            return spark.readStream.option("maxFilesPerTrigger", 1).table("events_raw")
        """,
    )
    appended = update._append

    def append_then_die(frame: Any, table: str, app_id: str, version: int) -> None:
        appended(frame, table, app_id, version)
        raise RuntimeError("killed after the write of batch 0, before its checkpoint")

    monkeypatch.setattr(update, "_append", append_then_die)
    with pytest.raises(PipelineError, match="killed after the write"):
        bed.run(source)
    assert bed.rows("bronze", "id") == [(1,), (2,)]  # batch 0 is in, its checkpoint is not

    monkeypatch.setattr(update, "_append", appended)
    again = bed.run(source)
    assert bed.rows("bronze", "id") == [(1,), (2,), (3,)]
    assert again.rows("bronze") == 1  # the replayed batch 0 was skipped, not written again
    writes = bed.spark.sql(f"DESCRIBE HISTORY {bed.table('bronze')}").where("operation = 'WRITE'")
    assert writes.count() == 2


def test_expect_or_fail_stops_the_update_naming_expectation_dataset_and_row(bed) -> None:
    bed.write("events_raw", [(1, "click", 1.0), (None, "view", 2.0)], EVENTS)
    source = bed.source(
        "silver.py",
        """
        from pyspark import pipelines as dp

        @dp.table
        @dp.expect_or_fail("valid_id", "id IS NOT NULL")
        def silver():
            return spark.readStream.table("events_raw")
        """,
    )
    with pytest.raises(ExpectationViolation) as failed:
        bed.run(source)
    message = str(failed.value)
    assert "expectation 'valid_id' (id IS NOT NULL)" in message
    assert "dataset 'silver'" in message
    assert '{"kind":"view","amount":2.0}' in message  # the failing row, as JSON
    assert bed.spark.table(bed.table("silver")).count() == 0  # nothing of the batch landed
    failures = [e for e in bed.events() if e["level"] == "ERROR"]
    assert [(e["event_type"], e["origin"]["flow_name"]) for e in failures] == [
        ("flow_progress", "silver"),
        ("update_progress", None),
    ]
    assert "valid_id" in failures[0]["error"]
