"""The zones flow run twice through the local runner: tables equal the static file, the
second run changes nothing.

land_zones copies `static_data/taxi_zone_lookup.csv` into the `training.taxi_zones.landing`
volume; load_zones appends the file to `taxi_zones_raw` (once per file content) and merges
it into `taxi_zones`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from meshops import context, discover
from meshops.engine import flowrun
from meshops.state import StatePaths

pytestmark = [pytest.mark.spark, pytest.mark.integration]

FLOW = Path(__file__).resolve().parents[1]
ZONES = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/zones"
LOOKUP = FLOW / "static_data" / "taxi_zone_lookup.csv"
KEYS = {"taxi_zones": "location_id", "taxi_zones_raw": "LocationID"}


def expected_zones() -> pd.DataFrame:
    csv = pd.read_csv(LOOKUP, keep_default_na=False)
    return pd.DataFrame(
        {
            "location_id": csv["LocationID"].astype("int32"),
            "borough": csv["Borough"],
            "zone": csv["Zone"],
            "service_zone": csv["service_zone"],
        }
    )


def frame(spark: SparkSession, table: str, key: str) -> pd.DataFrame:
    return spark.table(table).toPandas().sort_values(key).reset_index(drop=True)


@pytest.fixture(scope="module")
def runs(meshops_repo_root: Path, spark: SparkSession) -> dict[str, object]:
    ctx = context.detect(
        meshops_repo_root, env="local", overrides={"user": "ci@acme.example", "branch": "zones"}
    )
    mesh = discover.scan(meshops_repo_root)
    options = flowrun.RunOptions(progress=False)
    first = flowrun.run_flow(ctx, mesh, mesh.find(ZONES), options)
    schema = first.names.schema
    snapshot = {t: frame(spark, f"{schema}.{t}", key) for t, key in KEYS.items()}
    second = flowrun.run_flow(ctx, mesh, mesh.find(ZONES), options)
    return {"first": first, "second": second, "schema": schema, "after_first": snapshot}


def test_static_lookup_is_a_small_zone_table() -> None:
    zones = expected_zones()
    assert 15 <= len(zones) <= 25
    assert zones["location_id"].is_unique
    assert {"Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR"} <= set(
        zones["borough"]
    )


def test_both_runs_succeed(runs: dict[str, object]) -> None:
    first, second = runs["first"], runs["second"]
    assert isinstance(first, flowrun.RunResult) and isinstance(second, flowrun.RunResult)
    assert (first.record.status, second.record.status) == ("SUCCESS", "SUCCESS")
    assert str(runs["schema"]).startswith("acme_transport_taxinyc.local_ci_zones_")


def test_file_is_landed_in_the_training_volume(
    runs: dict[str, object], spark: SparkSession, meshops_repo_root: Path
) -> None:
    volume = StatePaths.for_repo(meshops_repo_root).volumes / "training/taxi_zones/landing"
    assert sorted(p.name for p in volume.iterdir()) == ["taxi_zone_lookup.csv"]
    assert (volume / "taxi_zone_lookup.csv").read_bytes() == LOOKUP.read_bytes()
    volumes = spark.sql("SHOW VOLUMES IN training.taxi_zones").collect()
    # columns (database, volume_name) on Databricks; the local engine names the second
    # volumeName, so it is read by position
    assert [v[1] for v in volumes] == ["landing"]


def test_taxi_zones_equal_the_static_file(runs: dict[str, object], spark: SparkSession) -> None:
    zones = frame(spark, f"{runs['schema']}.taxi_zones", "location_id")
    pd.testing.assert_frame_equal(zones, expected_zones(), check_dtype=False)


def test_raw_table_holds_the_file_once_with_its_hash(
    runs: dict[str, object], spark: SparkSession
) -> None:
    raw = frame(spark, f"{runs['schema']}.taxi_zones_raw", "LocationID")
    csv = pd.read_csv(LOOKUP, keep_default_na=False)
    assert len(raw) == len(csv)
    assert raw["LocationID"].tolist() == sorted(csv["LocationID"])
    assert set(raw["source_file"]) == {"taxi_zone_lookup.csv"}
    assert set(raw["file_sha256"]) == {hashlib.sha256(LOOKUP.read_bytes()).hexdigest()}


def test_second_run_changes_nothing(runs: dict[str, object], spark: SparkSession) -> None:
    schema, after_first = runs["schema"], runs["after_first"]
    assert isinstance(after_first, dict)
    for table, before in after_first.items():
        pd.testing.assert_frame_equal(frame(spark, f"{schema}.{table}", KEYS[table]), before)
    history = spark.sql(f"DESCRIBE HISTORY {schema}.taxi_zones").orderBy("version").collect()
    assert [h["operation"] for h in history] == ["CREATE TABLE", "MERGE", "MERGE"]
    first, rerun = history[1]["operationMetrics"], history[2]["operationMetrics"]
    assert int(first["numTargetRowsInserted"]) == len(expected_zones())
    for metric in ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted"):
        assert int(rerun[metric]) == 0, metric
    # the file was appended by the first run only (the rerun's append is empty: Delta
    # commits nothing or a write of 0 rows)
    raw_history = spark.sql(f"DESCRIBE HISTORY {schema}.taxi_zones_raw").collect()
    appended = [int(h["operationMetrics"].get("numOutputRows", 0)) for h in raw_history]
    assert sorted(a for a in appended if a) == [len(expected_zones())]
