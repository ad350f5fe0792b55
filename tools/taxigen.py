"""Seeded generator of NYC-like yellow-taxi trips, the sample data of the example mesh.

Databricks ships `samples.nyctaxi.trips`; a laptop has no such table, so this tool loads
the local `samples` catalog, a shared input catalog that flows read and never write:

- the table `samples.nyctaxi.trips`, written directly, as Databricks ships it (the ML flow
  trains on it);
- the same trips as parquet files in the volume `/Volumes/samples/nyctaxi/landing/trips`,
  which the ingest flow cleans into its own `trips` table (the revenue flow reads that).

- daily drops for the pipeline example (`--day N`): the trips of day N as a JSON-lines file in
  `/Volumes/samples/nyctaxi/landing/daily/trips/`, and that day's changes to the borough
  service dimension (a change feed: upserts and deletes with a sequence number) in
  `/Volumes/samples/nyctaxi/landing/daily/borough_changes/`. The tripstream pipeline's Auto
  Loader picks up each new file once.

The data are synthetic but shaped like the real thing (borough mix, durations that follow
distance, tips mostly paid by card, a few dirty rows), so the revenue flow has something
to aggregate, the ingest flow has something to clean and the ML flow has a signal to learn.

Rows are made in fixed blocks of `BLOCK_ROWS`, each from its own random stream keyed
by (seed, block number). The data therefore depend only on `rows` and `seed`, never on
how `write` splits them into files, and blocks are vectorised with numpy and pyarrow.

CLI: `python tools/taxigen.py --rows N --seed S` writes the landing files into the local
volume (`<state>/volumes/samples/nyctaxi/landing/trips` of this repository) and loads the
table from them on local Spark; `--no-table` skips the table; `--out DIR` writes only the
files, into DIR.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BLOCK_ROWS = 1 << 17
"""Rows per random stream; also the granularity of `write`'s files."""

LANDING_VOLUME = "samples/nyctaxi/landing/trips"
"""Where the ingest flow looks: `/Volumes/<this>` (the local runner maps `/Volumes`)."""

DAILY_VOLUME = "samples/nyctaxi/landing/daily"
"""Daily drops (`--day`): `trips/` and `borough_changes/` under `/Volumes/<this>`."""

DAY_US = 86_400 * 1_000_000

TABLE = "samples.nyctaxi.trips"
"""The sample table, under the name Databricks ships it with."""

BOROUGHS = ("Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR", "Unknown")
# Share of pickups per borough (the yellow-cab mix: Manhattan, then the airports in Queens).
PICKUP_WEIGHTS = (0.80, 0.055, 0.105, 0.012, 0.002, 0.002, 0.024)
# Where a trip that leaves its pickup borough goes.
DROPOFF_WEIGHTS = (0.55, 0.20, 0.17, 0.045, 0.005, 0.01, 0.02)
SAME_BOROUGH_SHARE = 0.7
NULL_BOROUGH_SHARE = 0.01

PAYMENT_TYPES = ("card", "cash", "no_charge", "dispute")
PAYMENT_WEIGHTS = (0.76, 0.21, 0.02, 0.01)

PASSENGER_COUNTS = np.arange(7)
PASSENGER_WEIGHTS = (0.015, 0.72, 0.14, 0.04, 0.025, 0.04, 0.02)
NULL_PASSENGER_SHARE = 0.005

# 2024 meter: $3.00 flag drop, $0.70 per 1/5 mile, $0.70 per minute stopped or slow.
FLAG_DROP_CENTS = 300
CENTS_PER_MILE = 350
CENTS_PER_SLOW_MINUTE = 70
# MTA tax 0.50 + improvement surcharge 1.00 + congestion surcharge 2.50, on every trip.
SURCHARGE_CENTS = 400
SURCHARGE = SURCHARGE_CENTS / 100
TOLL_CENTS = 694
EWR_TOLL_CENTS = 1738
CROSS_BOROUGH_TOLL_SHARE = 0.35

# Dirty rows the ingest flow must drop: voided trips (negative amounts) and trips
# that never moved (zero distance).
NEGATIVE_FARE_SHARE = 0.003
ZERO_DISTANCE_SHARE = 0.004

START = np.datetime64("2024-01-01T00:00:00", "us")
DAYS = 182  # January to June 2024
# Relative pickups per hour of day (quiet at 4-5, busy in the evening).
HOUR_WEIGHTS = (
    3.0, 2.2, 1.6, 1.1, 0.8, 0.9, 1.8, 3.2, 4.2, 4.4, 4.4, 4.6,
    4.9, 5.0, 5.3, 5.5, 5.4, 5.9, 6.6, 6.5, 6.0, 5.8, 5.3, 4.2,
)  # fmt: skip

SCHEMA = pa.schema(
    [
        pa.field("trip_id", pa.int64(), nullable=False),
        pa.field("tpep_pickup_datetime", pa.timestamp("us"), nullable=False),
        pa.field("tpep_dropoff_datetime", pa.timestamp("us"), nullable=False),
        pa.field("pickup_borough", pa.string()),
        pa.field("dropoff_borough", pa.string()),
        pa.field("passenger_count", pa.int64()),
        pa.field("trip_distance", pa.float64(), nullable=False),
        pa.field("fare_amount", pa.float64(), nullable=False),
        pa.field("tip_amount", pa.float64(), nullable=False),
        pa.field("tolls_amount", pa.float64(), nullable=False),
        pa.field("total_amount", pa.float64(), nullable=False),
        pa.field("payment_type", pa.string(), nullable=False),
    ]
)


def _probabilities(weights: tuple[float, ...]) -> np.ndarray:
    p = np.asarray(weights, dtype=np.float64)
    return p / p.sum()


def _labels(names: tuple[str, ...], index: np.ndarray, null: np.ndarray | None) -> pa.Array:
    """String column from category numbers (null where `null`), without Python loops."""
    return pa.array(names, pa.string()).take(pa.array(index, pa.int32(), mask=null))


def _block(first_id: int, rows: int, seed: int, block: int) -> pa.Table:
    """`rows` trips with ids from `first_id`, from the stream of (seed, block)."""
    rng = np.random.default_rng([seed, block])

    pickup = rng.choice(len(BOROUGHS), size=rows, p=_probabilities(PICKUP_WEIGHTS))
    elsewhere = rng.choice(len(BOROUGHS), size=rows, p=_probabilities(DROPOFF_WEIGHTS))
    dropoff = np.where(rng.random(rows) < SAME_BOROUGH_SHARE, pickup, elsewhere)
    pickup_null = rng.random(rows) < NULL_BOROUGH_SHARE
    dropoff_null = rng.random(rows) < NULL_BOROUGH_SHARE

    # Distance: short hops inside a borough, longer rides across, ~17 miles to Newark.
    ewr = BOROUGHS.index("EWR")
    cross = (pickup != dropoff) | pickup_null | dropoff_null
    to_ewr = (pickup == ewr) | (dropoff == ewr)
    median = np.where(to_ewr, 17.0, np.where(cross, 7.5, 1.7))
    spread = np.where(to_ewr, 0.12, np.where(cross, 0.4, 0.6))
    distance = np.round(median * np.exp(spread * rng.standard_normal(rows)), 2)
    distance = np.clip(distance, 0.01, 80.0)
    distance[rng.random(rows) < ZERO_DISTANCE_SHARE] = 0.0

    # Duration: distance at a city speed, plus time at lights and pick-up.
    mph = np.clip(11.0 * np.exp(0.35 * rng.standard_normal(rows)), 5.0, 45.0)
    seconds = (distance / mph * 3600.0 + rng.uniform(60.0, 300.0, rows)).astype(np.int64)

    day = rng.integers(0, DAYS, rows)
    hour = rng.choice(24, size=rows, p=_probabilities(HOUR_WEIGHTS))
    second_of_hour = rng.integers(0, 3600, rows)
    pickup_us = ((day * 24 + hour) * 3600 + second_of_hour) * 1_000_000
    pickup_at = START + pickup_us.astype("timedelta64[us]")
    dropoff_at = pickup_at + (seconds * 1_000_000).astype("timedelta64[us]")

    # Money in whole cents so that total = fare + tip + tolls + surcharges exactly.
    slow_minutes = np.maximum(0.0, seconds / 60.0 - distance / 12.0 * 60.0)
    fare = np.round(
        FLAG_DROP_CENTS + CENTS_PER_MILE * distance + CENTS_PER_SLOW_MINUTE * 0.5 * slow_minutes
    ).astype(np.int64)
    tolls = np.where(
        to_ewr,
        EWR_TOLL_CENTS,
        np.where(cross & (rng.random(rows) < CROSS_BOROUGH_TOLL_SHARE), TOLL_CENTS, 0),
    )
    payment = rng.choice(len(PAYMENT_TYPES), size=rows, p=_probabilities(PAYMENT_WEIGHTS))
    # Card riders usually tip 15-30 % (the screen suggests 20/25/30); cash tips are
    # rarely recorded; no-charge and disputed trips carry no tip.
    rate = np.clip(rng.normal(0.22, 0.05, rows), 0.05, 0.45)
    tips_card = (payment == 0) & (rng.random(rows) < 0.88)
    tips_cash = (payment == 1) & (rng.random(rows) < 0.03)
    tip = np.where(tips_card | tips_cash, np.round(rate * (fare + tolls)), 0).astype(np.int64)

    void = rng.random(rows) < NEGATIVE_FARE_SHARE
    sign = np.where(void, -1, 1)
    fare, tip, tolls = sign * fare, sign * tip, sign * tolls
    total = fare + tip + tolls + sign * SURCHARGE_CENTS

    passengers = rng.choice(PASSENGER_COUNTS, size=rows, p=_probabilities(PASSENGER_WEIGHTS))
    passengers_null = rng.random(rows) < NULL_PASSENGER_SHARE

    columns = [
        pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)),
        pa.array(pickup_at, pa.timestamp("us")),
        pa.array(dropoff_at, pa.timestamp("us")),
        _labels(BOROUGHS, pickup, pickup_null),
        _labels(BOROUGHS, dropoff, dropoff_null),
        pa.array(passengers, pa.int64(), mask=passengers_null),
        pa.array(distance),
        pa.array(fare / 100.0),
        pa.array(tip / 100.0),
        pa.array(tolls / 100.0),
        pa.array(total / 100.0),
        _labels(PAYMENT_TYPES, payment, None),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _blocks(rows: int, seed: int) -> Iterator[pa.Table]:
    if rows < 0:
        raise ValueError(f"rows must be 0 or more, got {rows}")
    for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
        yield _block(start + 1, min(BLOCK_ROWS, rows - start), seed, block)


def generate(rows: int, seed: int = 42) -> pa.Table:
    """`rows` trips (ids 1..rows); the same `rows` and `seed` always give the same table."""
    blocks = list(_blocks(rows, seed))
    return pa.concat_tables(blocks) if blocks else SCHEMA.empty_table()


def write(out_dir: Path, rows: int = 100_000, seed: int = 42, chunk_rows: int = 1_000_000) -> Path:
    """Write `generate(rows, seed)` as parquet files of about `chunk_rows` rows to `out_dir`.

    Files of an earlier run (`part-*.parquet`) are removed first, so the folder holds
    exactly one data set. Memory stays at one file's worth whatever `rows` is.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be 1 or more, got {chunk_rows}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("part-*.parquet"):
        old.unlink()
    blocks_per_file = max(1, -(-chunk_rows // BLOCK_ROWS))
    blocks = _blocks(rows, seed)
    part = 0
    while group := list(itertools.islice(blocks, blocks_per_file)):
        pq.write_table(pa.concat_tables(group), out_dir / f"part-{part:05d}.parquet")
        part += 1
    if part == 0:  # zero rows: still a readable (empty) data set with the schema
        pq.write_table(SCHEMA.empty_table(), out_dir / "part-00000.parquet")
    return out_dir


def day_trips(day: int, rows: int, seed: int = 42) -> pa.Table:
    """`rows` trips picked up on day `day` (0 = 2024-01-01), ids unique across days; the same
    (day, rows, seed) gives the same trips."""
    if not 0 <= day < DAYS:
        raise ValueError(f"day must be 0 to {DAYS - 1}, got {day}")
    trips = _block(day * 10_000_000, rows, seed, 1_000_000 + day)
    pickup = trips["tpep_pickup_datetime"].to_numpy().astype("int64")
    ride = trips["tpep_dropoff_datetime"].to_numpy().astype("int64") - pickup
    start = (START - np.datetime64("1970-01-01T00:00:00", "us")).astype("int64") + day * DAY_US
    moved = start + pickup % DAY_US
    trips = trips.set_column(
        1, "tpep_pickup_datetime", pa.array(moved.astype("datetime64[us]"), pa.timestamp("us"))
    )
    return trips.set_column(
        2,
        "tpep_dropoff_datetime",
        pa.array((moved + ride).astype("datetime64[us]"), pa.timestamp("us")),
    )


SERVICE_ZONES = ("Yellow Zone", "Boro Zone", "Airports")


def borough_changes(day: int, seed: int = 42) -> list[dict[str, Any]]:
    """Day `day`'s change feed of the borough service dimension: on day 0 every borough is
    inserted; later days update one or two boroughs' service zone and base fare, and on day 3
    'Unknown' is deleted. `sequence` grows with the day, so a replay orders the same way."""
    rng = np.random.default_rng([seed, 2_000_000 + day])
    at = START + np.timedelta64(day * DAY_US, "us")
    if day == 0:
        chosen = list(range(len(BOROUGHS)))
    else:
        chosen = sorted(set(rng.choice(len(BOROUGHS) - 1, size=2).tolist()))
    changes: list[dict[str, Any]] = []
    for n, index in enumerate(chosen):
        borough = BOROUGHS[index]
        changes.append(
            {
                "borough": borough,
                "service_zone": SERVICE_ZONES[
                    2 if borough == "EWR" else int(rng.integers(0, 2)) if day else int(index > 0)
                ],
                "base_fare": round(3.0 + 0.25 * int(rng.integers(0, 4)), 2),
                "operation": "UPSERT",
                "sequence": day * 1000 + n,
                "changed_at": str(at + np.timedelta64(n, "s")),
            }
        )
    if day == 3:
        changes.append(
            {
                "borough": "Unknown",
                "service_zone": None,
                "base_fare": None,
                "operation": "DELETE",
                "sequence": day * 1000 + len(changes),
                "changed_at": str(at + np.timedelta64(len(changes), "s")),
            }
        )
    return changes


def drop_day(volume: Path, day: int, rows: int, seed: int = 42) -> tuple[Path, Path]:
    """Write day `day`'s trips and borough changes as JSON-lines files under `volume` (the
    local folder of `/Volumes/samples/nyctaxi/landing/daily`); written to a hidden name and
    renamed, so a reader never sees half a file. The same day again rewrites the same files."""
    import json

    date = str(START.astype("datetime64[D]") + np.timedelta64(day, "D"))
    out = []
    for folder, records in (
        ("trips", day_trips(day, rows, seed).to_pylist()),
        ("borough_changes", borough_changes(day, seed)),
    ):
        target = volume / folder / f"{date}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        hidden = target.with_name(f".{target.name}.tmp")
        with hidden.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, default=str) + "\n")
        hidden.replace(target)
        out.append(target)
    return out[0], out[1]


def load_table(spark: Any, files: Path, table: str = TABLE) -> int:
    """Load the trips in `files` (as `write` makes them) into `table`, replacing it; its rows.

    `table` is in a shared input catalog (`samples`), which flow runs cannot write: this is
    the tool that loads it, so it writes with `shared_inputs_writable`. The table is a Delta
    table with the landing files' columns; timestamps as TIMESTAMP, as in the Databricks
    sample.
    """
    from meshops.engine import session

    catalog, schema, _ = table.split(".")
    trips = spark.read.parquet(str(files))
    for column in ("tpep_pickup_datetime", "tpep_dropoff_datetime"):
        trips = trips.withColumn(column, trips[column].cast("timestamp"))
    with session.shared_inputs_writable(spark):
        session.register_catalogs(spark, [catalog])
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {catalog}.{schema}")
        trips.write.mode("overwrite").option("overwriteSchema", "true").saveAsTable(table)
    return int(spark.table(table).count())


def local_spark() -> Any:
    """This repository's local Spark session (its state dir, as `meshops run` uses it)."""
    from meshops.engine import session
    from meshops.state import StatePaths

    state = StatePaths.for_repo(Path(__file__).resolve().parents[1])
    options = session.SessionOptions(
        state=state, catalogs=(TABLE.split(".")[0],), app_name="taxigen", mode="local"
    )
    return session.get_spark(options)


def default_out_dir() -> Path:
    """The local Volume of the landing files: `<state>/volumes/samples/nyctaxi/landing/trips`."""
    from meshops.state import StatePaths

    return StatePaths.for_repo(Path(__file__).resolve().parents[1]).volumes / LANDING_VOLUME


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="trips to write")
    parser.add_argument("--seed", type=int, default=42, help="same seed, same data")
    parser.add_argument(
        "--out", type=Path, default=None, help="only write the parquet files, into this folder"
    )
    parser.add_argument(
        "--table",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"load {TABLE} on local Spark (default: yes, unless --out is given)",
    )
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows per file")
    parser.add_argument(
        "--day",
        type=int,
        action="append",
        help="only drop day N's trips (--rows of them) and borough changes as JSON files into "
        f"/Volumes/{DAILY_VOLUME}/ (repeatable; 0 = 2024-01-01)",
    )
    args = parser.parse_args(argv)
    if args.day:
        if args.rows < 0 or any(not 0 <= d < DAYS for d in args.day):
            parser.error(f"--rows must be 0 or more and --day 0 to {DAYS - 1}")
        from meshops.state import StatePaths

        root = Path(__file__).resolve().parents[1]
        volume = args.out or StatePaths.for_repo(root).volumes / DAILY_VOLUME
        for day in args.day:
            trips, changes = drop_day(volume, day, args.rows, args.seed)
            print(f"dropped day {day}: {trips} ({args.rows:,} trips), {changes}")
        return 0
    if args.rows < 0 or args.chunk_rows < 1:
        parser.error("--rows must be 0 or more and --chunk-rows 1 or more")
    out = args.out if args.out is not None else default_out_dir()
    began = time.perf_counter()
    write(out, rows=args.rows, seed=args.seed, chunk_rows=args.chunk_rows)
    seconds = time.perf_counter() - began
    rate = args.rows / seconds if seconds > 0 else float("inf")
    print(f"wrote {args.rows:,} rows to {out} in {seconds:.2f} s ({rate:,.0f} rows/s)")
    if args.table if args.table is not None else args.out is None:
        began = time.perf_counter()
        loaded = load_table(local_spark(), out)
        print(f"loaded {loaded:,} rows into {TABLE} in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
