"""The tripstream pipeline run locally, update after update, on hand-made daily drops: Auto
Loader takes each file once, the expectations count, drop and stop as declared, the borough
dimension keeps its history (SCD type 2), and the gold views follow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from meshops import context, discover
from meshops.engine import flowrun
from meshops.state import StatePaths

pytestmark = [pytest.mark.spark, pytest.mark.integration]

FLOW = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/tripstream"
DAILY = "samples/nyctaxi/landing/daily"


def trip(
    trip_id: int | None, day: int, fare: float, distance: float, borough: str
) -> dict[str, Any]:
    return {
        "trip_id": trip_id,
        "tpep_pickup_datetime": f"2024-01-0{day} 08:00:00",
        "tpep_dropoff_datetime": f"2024-01-0{day} 08:20:00",
        "pickup_borough": borough,
        "dropoff_borough": borough,
        "passenger_count": 1,
        "trip_distance": distance,
        "fare_amount": fare,
        "tip_amount": 0.0,
        "tolls_amount": 0.0,
        "total_amount": fare + 4.0,
        "payment_type": "card",
    }


def change(borough: str, zone: str | None, operation: str, sequence: int) -> dict[str, Any]:
    return {
        "borough": borough,
        "service_zone": zone,
        "base_fare": 3.0,
        "operation": operation,
        "sequence": sequence,
        "changed_at": "2024-01-01T00:00:00",
    }


def drop(state: Path, day: int, trips: list[dict[str, Any]], changes: list[dict[str, Any]]) -> None:
    for folder, records in (("trips", trips), ("borough_changes", changes)):
        target = StatePaths(state).volumes / DAILY / folder / f"2024-01-0{day}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture(scope="module")
def updates(
    meshops_repo_root: Path, meshops_state_dir: Path, spark: SparkSession
) -> dict[str, Any]:
    ctx = context.detect(
        meshops_repo_root, env="local", overrides={"user": "ci@acme.example", "branch": "stream"}
    )
    mesh = discover.scan(meshops_repo_root)
    flow = mesh.find(FLOW)
    options = flowrun.RunOptions(progress=False, full_refresh=True)
    drop(
        meshops_state_dir,
        1,
        [
            trip(1, 1, 10.0, 2.0, "Manhattan"),
            trip(2, 1, 20.0, 5.0, "Queens"),
            trip(3, 1, -10.0, 2.0, "Manhattan"),  # voided: dropped, quarantined
            trip(4, 1, 5.0, 0.0, "Manhattan"),  # never moved: counted, kept
            trip(5, 1, 7.0, 1.0, "Bronx"),
        ],
        [
            change("Manhattan", "Yellow Zone", "UPSERT", 1),
            change("Queens", "Boro Zone", "UPSERT", 2),
        ],
    )
    first = flowrun.run_flow(ctx, mesh, flow, options)
    drop(
        meshops_state_dir,
        2,
        [trip(6, 2, 12.0, 3.0, "Manhattan"), trip(7, 2, 8.0, 1.5, "Queens")],
        [change("Manhattan", "Boro Zone", "UPSERT", 3), change("Queens", None, "DELETE", 4)],
    )
    second = flowrun.run_flow(ctx, mesh, flow, flowrun.RunOptions(progress=False))
    drop(meshops_state_dir, 3, [trip(None, 3, 9.0, 1.0, "Bronx")], [])
    third = flowrun.run_flow(ctx, mesh, flow, flowrun.RunOptions(progress=False))
    return {"first": first, "second": second, "third": third}


def table(spark: SparkSession, result: flowrun.RunResult, name: str) -> str:
    [found] = [t for t in result.tables() if t.endswith(f".{name}")]
    return found


def counts(result: flowrun.RunResult) -> dict[str, tuple[int, int]]:
    [task] = result.record.tasks
    return {e["name"]: (e["passed"], e["failed"]) for e in task.expectations}


def test_first_update_lands_checks_and_quarantines(
    updates: dict[str, Any], spark: SparkSession
) -> None:
    first = updates["first"]
    assert first.ok
    tables = first.tables()
    assert tables[table(spark, first, "trips_bronze")] == 5
    assert tables[table(spark, first, "trips_silver")] == 4
    assert tables[table(spark, first, "trips_silver_quarantine")] == 1
    assert counts(first)["non_negative_fare"][1] == 1
    assert counts(first)["moved"][1] == 1
    assert counts(first)["trip_id_present"][1] == 0
    [voided] = spark.table(table(spark, first, "trips_silver_quarantine")).collect()
    assert voided["trip_id"] == 3


def test_second_update_takes_only_the_new_files(
    updates: dict[str, Any], spark: SparkSession
) -> None:
    second = updates["second"]
    assert second.ok
    silver = table(spark, second, "trips_silver")
    assert sorted(r["trip_id"] for r in spark.table(silver).collect()) == [1, 2, 4, 5, 6, 7]
    days = {
        r["day"].isoformat(): r["trips"]
        for r in spark.table(table(spark, second, "revenue_by_day")).collect()
    }
    assert days == {"2024-01-01": 4, "2024-01-02": 2}


def test_boroughs_keep_their_history(updates: dict[str, Any], spark: SparkSession) -> None:
    boroughs = table(spark, updates["second"], "boroughs")
    rows = sorted(
        (r["borough"], r["service_zone"], r["__START_AT"], r["__END_AT"])
        for r in spark.table(boroughs).collect()
    )
    assert rows == [
        ("Manhattan", "Boro Zone", 3, None),
        ("Manhattan", "Yellow Zone", 1, 3),
        ("Queens", "Boro Zone", 2, 4),
    ]


def test_a_trip_without_id_stops_the_update_naming_it(updates: dict[str, Any]) -> None:
    third = updates["third"]
    assert not third.ok
    [task] = third.record.tasks
    assert "trip_id_present" in task.error and "trips_silver" in task.error
