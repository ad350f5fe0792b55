"""Reconciling a finance report against the version of transport's table it was built from.

transport republishes `revenue_per_inhabitant` on every run (a new Delta version). A
revenue_share report built before the latest run must be checked against the versions of
transport's tables it read (time travel), not against today's figures.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from meshops import context, discover, identity
from meshops.engine import flowrun
from meshops.state import StatePaths
from reporting.revenue_share import reconciliation_checks

pytestmark = [pytest.mark.spark, pytest.mark.integration]

TAXI = "orgs/acme/domains/transport/projects/taxinyc/flows/prep"
SHARE = "orgs/acme/domains/finance/projects/reporting/flows/prep/revenue_share"
LATE_FARE = 100.0


def latest_version(spark: SparkSession, table: str) -> int:
    row = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()
    assert row is not None
    return int(row["version"])


def by_borough(frame: pd.DataFrame) -> dict[str, float]:
    return dict(zip(frame["borough"], frame["total_revenue"], strict=True))


@pytest.fixture(scope="module")
def report(meshops_repo_root: Path, spark: SparkSession) -> dict[str, object]:
    """A report built on transport's tables, then a transport rerun after a late fare."""
    root = meshops_repo_root
    landing = StatePaths.for_repo(root).volumes / "samples/nyctaxi/landing/trips"
    spec = importlib.util.spec_from_file_location("taxigen", root / "tools/taxigen.py")
    assert spec is not None and spec.loader is not None
    taxigen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(taxigen)
    taxigen.write(landing, rows=400, seed=7)  # the landing files of the mesh test
    ctx = context.detect(root, env="local", overrides={"user": "ci@acme.example", "branch": "tt"})
    mesh = discover.scan(root)
    # trips are upserted: start from none, whatever other tests of this process left there
    trips = identity.of(ctx).names_for(f"{TAXI}/ingest").table("trips")  # ingest's own table
    flowrun.spark_for(ctx, mesh).sql(f"DROP TABLE IF EXISTS {trips}")
    options = flowrun.RunOptions(progress=False)
    runs = {
        rel: flowrun.run_flow(ctx, mesh, mesh.find(rel), options)
        for rel in (f"{TAXI}/ingest", f"{TAXI}/revenue", SHARE)
    }
    assert all(r.ok for r in runs.values()), {k: r.record.status for k, r in runs.items()}
    transport = runs[f"{TAXI}/revenue"].names.schema
    per_inhabitant = f"{transport}.revenue_per_inhabitant"
    built_from = {
        t: latest_version(spark, f"{transport}.{t}")
        for t in ("revenue_per_inhabitant", "revenue_by_borough")
    }
    source_then = spark.table(per_inhabitant).toPandas()

    # a late fare of a Manhattan trip, then transport's next run republishes
    trip = spark.sql(
        f"SELECT min(trip_id) AS id FROM {trips} WHERE pickup_borough = 'Manhattan'"
    ).first()
    assert trip is not None and trip["id"] is not None
    spark.sql(
        f"UPDATE {trips} SET total_amount = total_amount + {LATE_FARE} WHERE trip_id = {trip['id']}"
    )
    rerun = flowrun.run_flow(ctx, mesh, mesh.find(f"{TAXI}/revenue"), options)
    assert rerun.ok
    return {
        "transport": transport,
        "finance": runs[SHARE].names.schema,
        "built_from": built_from,
        "source_then": source_then,
    }


def test_transport_republished_a_new_version(
    report: dict[str, object], spark: SparkSession
) -> None:
    transport, built_from = report["transport"], report["built_from"]
    assert isinstance(built_from, dict)
    table = f"{transport}.revenue_per_inhabitant"
    assert latest_version(spark, table) > built_from["revenue_per_inhabitant"]
    now = by_borough(spark.table(table).toPandas())
    then = by_borough(report["source_then"])  # type: ignore[arg-type]
    assert now["Manhattan"] == pytest.approx(then["Manhattan"] + LATE_FARE, abs=0.005)
    assert {b: v for b, v in now.items() if b != "Manhattan"} == {
        b: v for b, v in then.items() if b != "Manhattan"
    }


def test_version_as_of_reads_what_the_report_was_built_from(
    report: dict[str, object], spark: SparkSession
) -> None:
    transport, built_from = report["transport"], report["built_from"]
    assert isinstance(built_from, dict)
    table = f"{transport}.revenue_per_inhabitant"
    version = built_from["revenue_per_inhabitant"]
    then = report["source_then"]
    assert isinstance(then, pd.DataFrame)
    expected = then.sort_values("borough").reset_index(drop=True)
    for old in (
        spark.read.option("versionAsOf", version).table(table),
        spark.sql(f"SELECT * FROM {table} VERSION AS OF {version}"),
    ):
        frame = old.toPandas().sort_values("borough").reset_index(drop=True)
        pd.testing.assert_frame_equal(frame, expected)
    current = spark.table(table).toPandas().sort_values("borough").reset_index(drop=True)
    assert not current.equals(expected)


def test_report_reconciles_with_its_source_version_not_with_the_latest(
    report: dict[str, object], spark: SparkSession
) -> None:
    transport, built_from = report["transport"], report["built_from"]
    assert isinstance(built_from, dict)
    shares = spark.table(f"{report['finance']}.revenue_share")
    by_borough_table = f"{transport}.revenue_by_borough"
    then = spark.sql(
        f"SELECT * FROM {by_borough_table} VERSION AS OF {built_from['revenue_by_borough']}"
    )
    checks = {c.check: c for c in reconciliation_checks(shares, then)}
    assert all(c.passed for c in checks.values()), checks
    latest = {c.check: c for c in reconciliation_checks(shares, spark.table(by_borough_table))}
    assert latest["revenue_matches_transport_revenue_by_borough"].passed is False
    assert "Manhattan" in latest["revenue_matches_transport_revenue_by_borough"].detail


def test_change_data_feed_since_the_report_holds_the_new_figures(
    report: dict[str, object], spark: SparkSession
) -> None:
    transport, built_from = report["transport"], report["built_from"]
    assert isinstance(built_from, dict)
    table = f"{transport}.revenue_per_inhabitant"
    since = built_from["revenue_per_inhabitant"] + 1
    changes = spark.sql(f"SELECT * FROM table_changes('{table}', {since})").toPandas()
    assert len(changes) > 0
    inserted = changes[changes["_change_type"].isin(["insert", "update_postimage"])]
    current = spark.table(table).toPandas()
    assert by_borough(inserted) == pytest.approx(by_borough(current))
    assert by_borough(inserted)["Manhattan"] == pytest.approx(
        by_borough(report["source_then"])["Manhattan"] + LATE_FARE,  # type: ignore[arg-type]
        abs=0.005,
    )
