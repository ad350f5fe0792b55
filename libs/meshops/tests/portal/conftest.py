"""A small two-domain mesh with published products, a consumer and recorded local runs: what
the lineage and portal tests build from (no Spark: run records are written as runs write them)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshops import context, discover, identity
from meshops.engine.runs import RunRecord, RunStore, TaskRecord
from meshops.state import StatePaths
from meshops.testing.mesh import FlowDef, commit_all, write_flow

REVENUE = FlowDef(
    name="revenue",
    tasks={"revenue_by_borough": (), "revenue_per_inhabitant": ("revenue_by_borough",)},
)
SHARE = FlowDef(
    domain="finance", project="reporting", name="revenue_share", tasks={"revenue_share": ()}
)
MODEL = FlowDef(kind="ml", name="taximodel", tasks={"training": (), "validation": ("training",)})

PRODUCTS = """products:
  revenue_per_inhabitant:
    project: taxinyc
    flow: revenue
    description: Taxi revenue per resident of each borough
    freshness: 1d
    columns:
      - {name: borough, type: string, description: pickup borough}
      - {name: revenue_per_inhabitant, type: double}
  revenue_by_borough:
    project: taxinyc
    flow: revenue
    description: Revenue per pickup borough
    columns:
      - {name: borough, type: string}
      - {name: total_revenue, type: double}
"""

SHARE_NOTEBOOK = """# Databricks notebook source
from brickops.datamesh.naming import catname_from_path, tablename

transport = "acme_transport_taxinyc"
check = spark.table(tablename(tbl="revenue_by_borough", db="revenue", cat=transport))
"""


@dataclass(frozen=True)
class ProductMesh:
    root: Path
    state: StatePaths
    ctx: context.Context
    mesh: discover.Mesh
    runs: tuple[RunRecord, ...]


def record(
    ctx: context.Context,
    flow: FlowDef,
    tasks: list[TaskRecord],
    *,
    env: str = "local",
    status: str = "SUCCESS",
    seconds: float = 12.5,
) -> RunRecord:
    """A finished run record of `flow`, as `engine.flowrun` saves one."""
    ident = identity.of(ctx.with_env(env))
    names = ident.names_for(flow.rel)
    started = time.time() - 60
    return RunRecord(
        flow=flow.rel,
        env=env,
        deployment=ident.id,
        job_name=None,
        names={"catalog": names.catalog, "schema": names.schema, "job": names.job},
        commit=ctx.commit,
        started=started,
        ended=started + seconds,
        status=status,
        tasks=tasks,
    )


@pytest.fixture
def product_mesh(mesh_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProductMesh:
    for flow in (REVENUE, SHARE, MODEL):
        write_flow(mesh_repo, flow)
    (mesh_repo / "orgs/acme/domains/transport/products.yml").write_text(PRODUCTS)
    share = mesh_repo / SHARE.rel
    with (share / "deployment.yml").open("a") as spec:
        spec.write("consumes:\n  - transport.taxinyc.revenue_per_inhabitant\n")
    (share / "revenue_share.py").write_text(SHARE_NOTEBOOK)
    commit_all(mesh_repo, "products")
    state = StatePaths(tmp_path / "state")
    monkeypatch.setenv("MESHOPS_STATE_DIR", str(state.root))
    ctx = context.detect(mesh_repo, env="local", environ={})
    local = identity.of(ctx).names_for(REVENUE.rel).schema
    dev = identity.of(ctx.with_env("dev")).names_for(REVENUE.rel).schema
    share_schema = identity.of(ctx).names_for(SHARE.rel).schema
    runs = (
        record(
            ctx,
            REVENUE,
            [
                TaskRecord(
                    "revenue_by_borough",
                    "SUCCESS",
                    1,
                    4.0,
                    tables={f"{local}.revenue_by_borough": 6},
                    reads=["samples.nyctaxi.trips", f"{local}.borough_population"],
                ),
                TaskRecord(
                    "revenue_per_inhabitant",
                    "SUCCESS",
                    1,
                    3.0,
                    tables={f"{local}.revenue_per_inhabitant": 5},
                    reads=[f"{local}.revenue_by_borough"],
                ),
            ],
        ),
        # finance on a dev branch read transport's dev copy: the same logical table
        record(
            ctx,
            SHARE,
            [
                TaskRecord(
                    "revenue_share",
                    "SUCCESS",
                    1,
                    2.0,
                    tables={f"{share_schema}.revenue_share": 5},
                    reads=[f"{dev}.revenue_per_inhabitant"],
                )
            ],
            seconds=7.25,
        ),
    )
    store = RunStore(state.runs_db)
    for run in runs:
        store.save(run)
    return ProductMesh(mesh_repo, state, ctx, discover.scan(mesh_repo), runs)
