"""The sample-data generator: deterministic, consistent, shaped like NYC yellow-cab trips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import taxigen

pytestmark = pytest.mark.unit

ROWS = 3_000


@pytest.fixture(scope="module")
def trips() -> pa.Table:
    return taxigen.generate(ROWS, seed=7)


def test_schema_and_ids(trips: pa.Table) -> None:
    assert trips.schema == taxigen.SCHEMA
    assert trips.num_rows == ROWS
    assert trips["trip_id"].to_pylist() == list(range(1, ROWS + 1))


def test_same_seed_same_data_other_seed_other_data() -> None:
    assert taxigen.generate(500, seed=1).equals(taxigen.generate(500, seed=1))
    assert not taxigen.generate(500, seed=1).equals(taxigen.generate(500, seed=2))


def test_more_than_one_block_has_distinct_blocks() -> None:
    rows = taxigen.BLOCK_ROWS + 10
    table = taxigen.generate(rows, seed=3)
    assert table.num_rows == rows
    assert table["trip_id"][-1].as_py() == rows
    first = table.slice(0, 10).drop_columns(["trip_id"])
    second = table.slice(taxigen.BLOCK_ROWS, 10).drop_columns(["trip_id"])
    assert not first.equals(second)


def test_zero_rows_gives_empty_table_with_schema() -> None:
    table = taxigen.generate(0)
    assert table.num_rows == 0
    assert table.schema == taxigen.SCHEMA


def test_negative_rows_rejected() -> None:
    with pytest.raises(ValueError, match="rows must be 0 or more"):
        taxigen.generate(-1)


def test_dropoff_after_pickup_within_2024_h1(trips: pa.Table) -> None:
    pickup = trips["tpep_pickup_datetime"].to_numpy()
    dropoff = trips["tpep_dropoff_datetime"].to_numpy()
    minutes = (dropoff - pickup) / np.timedelta64(1, "m")
    assert (minutes >= 1).all()
    assert 8 < np.median(minutes) < 25  # a typical Manhattan ride
    assert pickup.min() >= np.datetime64("2024-01-01")
    assert pickup.max() < np.datetime64("2024-07-01")
    months = set(pc.month(trips["tpep_pickup_datetime"]).to_pylist())
    assert months == {1, 2, 3, 4, 5, 6}


def test_total_is_fare_plus_tip_plus_tolls_plus_surcharges(trips: pa.Table) -> None:
    fare, tip, tolls, total = (
        trips[c].to_numpy() for c in ("fare_amount", "tip_amount", "tolls_amount", "total_amount")
    )
    surcharge = np.where(fare < 0, -taxigen.SURCHARGE, taxigen.SURCHARGE)
    np.testing.assert_allclose(total, fare + tip + tolls + surcharge, atol=1e-9)
    for amount in (fare, tip, tolls, total):  # whole cents
        np.testing.assert_allclose(np.round(amount * 100), amount * 100, atol=1e-6)


def test_boroughs_have_realistic_mix_and_some_nulls(trips: pa.Table) -> None:
    for column in ("pickup_borough", "dropoff_borough"):
        values = trips[column]
        assert set(pc.unique(values.drop_null()).to_pylist()) <= set(taxigen.BOROUGHS)
        assert 0 < values.null_count < ROWS * 0.03
    counts = pc.value_counts(trips["pickup_borough"].drop_null()).to_pylist()
    by_name = {c["values"]: c["counts"] for c in counts}
    assert max(by_name, key=by_name.__getitem__) == "Manhattan"
    assert by_name["Manhattan"] > 0.7 * ROWS
    assert by_name["Queens"] > by_name["Bronx"]


def test_tips_mostly_on_card(trips: pa.Table) -> None:
    payment = trips["payment_type"].to_numpy(zero_copy_only=False)
    tip = trips["tip_amount"].to_numpy()
    assert set(payment) <= set(taxigen.PAYMENT_TYPES)
    assert (tip[payment == "card"] > 0).mean() > 0.8
    assert (tip[payment == "cash"] > 0).mean() < 0.1
    assert (tip[np.isin(payment, ["no_charge", "dispute"])] == 0).all()


def test_some_dirty_rows_for_ingest_to_drop() -> None:
    table = taxigen.generate(20_000, seed=11)
    negative = pc.sum(pc.less(table["fare_amount"], 0)).as_py()
    zero_distance = pc.sum(pc.equal(table["trip_distance"], 0)).as_py()
    assert 10 < negative < 200
    assert 10 < zero_distance < 200
    assert pc.min(table["trip_distance"]).as_py() == 0
    clean = pc.and_(pc.greater(table["fare_amount"], 0), pc.greater(table["trip_distance"], 0))
    assert pc.sum(clean).as_py() > 0.98 * table.num_rows


def test_write_splits_into_files_with_same_data_as_generate(tmp_path: Path) -> None:
    rows = taxigen.BLOCK_ROWS * 2 + 5
    out = taxigen.write(tmp_path / "trips", rows=rows, seed=5, chunk_rows=taxigen.BLOCK_ROWS)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    written = pq.read_table(out).sort_by("trip_id")
    assert written.equals(taxigen.generate(rows, seed=5))


def test_write_replaces_files_of_an_earlier_run(tmp_path: Path) -> None:
    taxigen.write(tmp_path, rows=taxigen.BLOCK_ROWS + 1, seed=1, chunk_rows=1)
    taxigen.write(tmp_path, rows=50, seed=2)
    assert [p.name for p in tmp_path.iterdir()] == ["part-00000.parquet"]
    assert pq.read_table(tmp_path).equals(taxigen.generate(50, seed=2))


def test_write_zero_rows_leaves_readable_empty_file(tmp_path: Path) -> None:
    taxigen.write(tmp_path, rows=0)
    table = pq.read_table(tmp_path)
    assert table.num_rows == 0
    assert table.schema.names == taxigen.SCHEMA.names


def test_write_rejects_bad_chunk_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_rows must be 1 or more"):
        taxigen.write(tmp_path, rows=10, chunk_rows=0)


def test_default_out_dir_is_the_local_landing_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHOPS_STATE_DIR", str(tmp_path))
    assert taxigen.default_out_dir() == tmp_path / "volumes/samples/nyctaxi/landing/trips"


@pytest.mark.integration
def test_cli_writes_rows_and_reports_rate(tmp_path: Path) -> None:
    script = Path(taxigen.__file__)
    out = tmp_path / "landing"
    done = subprocess.run(
        [sys.executable, str(script), "--rows", "1234", "--seed", "9", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote 1,234 rows to {out}" in done.stdout
    assert "rows/s" in done.stdout
    assert pq.read_table(out).equals(taxigen.generate(1234, seed=9))


@pytest.mark.integration
def test_cli_defaults_to_the_state_volume(tmp_path: Path) -> None:
    script = Path(taxigen.__file__)
    done = subprocess.run(
        [sys.executable, str(script), "--rows", "10"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MESHOPS_STATE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    landing = tmp_path / "volumes/samples/nyctaxi/landing/trips"
    assert pq.read_table(landing).num_rows == 10


@pytest.mark.integration
def test_cli_rejects_negative_rows(tmp_path: Path) -> None:
    script = Path(taxigen.__file__)
    done = subprocess.run(
        [sys.executable, str(script), "--rows", "-5", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--rows must be 0 or more" in done.stderr


def test_day_trips_fall_on_their_day_with_ids_unique_across_days() -> None:
    first, second = taxigen.day_trips(0, 500), taxigen.day_trips(1, 500)
    for day, trips in ((0, first), (1, second)):
        dates = {t.date().isoformat() for t in trips["tpep_pickup_datetime"].to_pylist()}
        assert dates == {f"2024-01-0{day + 1}"}
        rides = zip(
            trips["tpep_pickup_datetime"].to_pylist(),
            trips["tpep_dropoff_datetime"].to_pylist(),
            strict=True,
        )
        assert all(drop > pick for pick, drop in rides)
    assert not set(first["trip_id"].to_pylist()) & set(second["trip_id"].to_pylist())
    assert taxigen.day_trips(1, 500).equals(second)


def test_borough_changes_insert_all_then_update_and_delete() -> None:
    day0 = taxigen.borough_changes(0)
    assert sorted(c["borough"] for c in day0) == sorted(taxigen.BOROUGHS)
    assert {c["operation"] for c in day0} == {"UPSERT"}
    day3 = taxigen.borough_changes(3)
    assert day3[-1]["borough"] == "Unknown" and day3[-1]["operation"] == "DELETE"
    sequences = [c["sequence"] for d in range(5) for c in taxigen.borough_changes(d)]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)


def test_drop_day_writes_json_lines_once_per_day(tmp_path: Path) -> None:
    trips, changes = taxigen.drop_day(tmp_path, 2, 100)
    assert trips == tmp_path / "trips" / "2024-01-03.json"
    assert len(trips.read_text().splitlines()) == 100
    assert changes.read_text().splitlines()
    taxigen.drop_day(tmp_path, 2, 100)  # again: same files, nothing added
    assert sorted(p.name for p in (tmp_path / "trips").iterdir()) == ["2024-01-03.json"]
