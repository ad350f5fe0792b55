"""The example mesh end to end on the local runner: ingest -> revenue -> revenue_share.

A few hundred generated trips go through the real notebooks of three flows (two domains),
and every output table is checked against pandas sums of the ingested trips.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from meshops import context, discover, identity, naming
from meshops.engine import flowrun
from meshops.state import StatePaths

pytestmark = [pytest.mark.spark, pytest.mark.integration]

TAXI = "orgs/acme/domains/transport/projects/taxinyc/flows/prep"
SHARE = "orgs/acme/domains/finance/projects/reporting/flows/prep/revenue_share"
BOROUGHS = ["Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island"]


def taxigen(root: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("taxigen", root / "tools/taxigen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(meshops_repo_root: Path, spark: object) -> dict[str, flowrun.RunResult]:
    root = meshops_repo_root
    state = StatePaths.for_repo(root)  # the test session's state dir (MESHOPS_STATE_DIR)
    landing = state.volumes / "samples/nyctaxi/landing/trips"
    taxigen(root).write(landing, rows=400, seed=7)
    ctx = context.detect(root, env="local", overrides={"user": "ci@acme.example", "branch": "it"})
    mesh = discover.scan(root)
    # trips are upserted: start from none, whatever other tests of this process left there
    trips = identity.of(ctx).names_for(f"{TAXI}/ingest").table("trips")
    flowrun.spark_for(ctx, mesh).sql(f"DROP TABLE IF EXISTS {trips}")
    options = flowrun.RunOptions(progress=False)
    return {
        rel.rsplit("/", 1)[1]: flowrun.run_flow(ctx, mesh, mesh.find(rel), options)
        for rel in (f"{TAXI}/ingest", f"{TAXI}/revenue", SHARE)
    }


def frame(spark: object, name: str) -> pd.DataFrame:
    return spark.table(name).toPandas()  # type: ignore[attr-defined,no-any-return]


def test_every_flow_succeeds_under_local_names(runs: dict[str, flowrun.RunResult]) -> None:
    assert {name: r.record.status for name, r in runs.items()} == {
        "ingest": "SUCCESS",
        "revenue": "SUCCESS",
        "revenue_share": "SUCCESS",
    }
    revenue = runs["revenue"]
    assert revenue.names.schema.startswith("acme_transport_taxinyc.local_ci_it_")
    assert sorted(revenue.tables()) == sorted(
        f"{revenue.names.schema}.{t}"
        for t in (
            "revenue_by_borough",
            "revenue_by_tripmonth",
            "borough_population",
            "revenue_per_inhabitant",
        )
    )
    assert runs["ingest"].tables() == {trips_table(runs): len_trips(runs)}


def trips_table(runs: dict[str, flowrun.RunResult]) -> str:
    """The ingest flow's own trips table (shared `samples` are read-only to flows)."""
    return runs["ingest"].names.table("trips")


def len_trips(runs: dict[str, flowrun.RunResult]) -> int:
    return runs["ingest"].tables()[trips_table(runs)]


def test_revenue_tables_equal_pandas_sums_of_the_trips(
    runs: dict[str, flowrun.RunResult], spark: object, meshops_repo_root: Path
) -> None:
    trips = frame(spark, trips_table(runs))
    assert 300 < len(trips) < 400  # the generator's dirty rows were dropped
    schema = runs["revenue"].names.schema

    by_borough = frame(spark, f"{schema}.revenue_by_borough").set_index("borough").sort_index()
    grouped = trips.groupby("pickup_borough")
    assert by_borough["trip_count"].to_dict() == grouped.size().to_dict()
    for column, source in (("total_fare", "fare_amount"), ("total_revenue", "total_amount")):
        expected = grouped[source].sum().round(2)
        assert by_borough[column].to_dict() == pytest.approx(expected.to_dict(), abs=0.005)

    by_month = frame(spark, f"{schema}.revenue_by_tripmonth")
    months = trips["tpep_pickup_datetime"].dt.to_period("M").dt.start_time.dt.date
    assert dict(zip(by_month["trip_month"], by_month["trip_count"], strict=True)) == (
        months.value_counts().to_dict()
    )

    per_inhabitant = frame(spark, f"{schema}.revenue_per_inhabitant").set_index("borough")
    census = pd.read_csv(
        meshops_repo_root / TAXI / "revenue/static_data/borough_population_2020.csv",
        thousands=",",
    )
    population = census.set_index("borough")["population"].astype(int)
    assert sorted(per_inhabitant.index) == BOROUGHS
    for borough in BOROUGHS:
        revenue = float(by_borough["total_revenue"].get(borough, 0.0))
        row = per_inhabitant.loc[borough]
        assert row["population"] == population[borough]
        assert row["revenue_per_inhabitant"] == pytest.approx(revenue / population[borough])


def test_finance_reads_transports_data_product(
    runs: dict[str, flowrun.RunResult], spark: object, meshops_repo_root: Path
) -> None:
    ctx = context.detect(
        meshops_repo_root, env="local", overrides={"user": "ci@acme.example", "branch": "it"}
    )
    transport = naming.table(
        identity.of(ctx), f"{TAXI}/revenue/revenue_per_inhabitant.py", "revenue", "x"
    )
    finance_schema = runs["revenue_share"].names.schema
    assert finance_schema.startswith("acme_finance_reporting.local_ci_it_")
    shares = frame(spark, f"{finance_schema}.revenue_share").set_index("borough")
    assert shares["revenue_share"].sum() == pytest.approx(1.0)
    source = frame(spark, transport.removesuffix(".x") + ".revenue_per_inhabitant")
    source = source.set_index("borough")
    assert sorted(shares.index) == sorted(source.index) == BOROUGHS
    for borough in BOROUGHS:
        expected = source.loc[borough, "total_revenue"] / source["total_revenue"].sum()
        assert shares.loc[borough, "revenue_share"] == pytest.approx(expected)
    checks = frame(spark, f"{finance_schema}.revenue_reconciliation")
    assert len(checks) > 0
    assert checks["passed"].all()
