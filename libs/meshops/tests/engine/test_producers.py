"""engine.producers: the flow a missing table points back to, without Spark (names only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops import context
from meshops.engine import producers
from meshops.testing.mesh import FlowDef, commit_all, write_flow

pytestmark = pytest.mark.unit

SPARK = "AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] The table or view {} cannot be found."


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        (
            "`acme_x`.`local_jd_main_1a2b3c4d_ingest`.`trips`",
            ("acme_x", "local_jd_main_1a2b3c4d_ingest", "trips"),
        ),
        ("`s`.`t`", ("s", "t")),
        ("`odd``name`.`s`.`t`", ("odd`name", "s", "t")),
        ("`t`", ("t",)),
    ],
)
def test_the_table_name_comes_from_sparks_message(name: str, parts: tuple[str, ...]) -> None:
    assert producers.missing_table(None, SPARK.format(name)) == parts


def test_other_errors_have_no_missing_table() -> None:
    assert producers.missing_table(ValueError("no"), "ValueError: no") is None
    assert (
        producers.missing_table(None, "[SCHEMA_NOT_FOUND] The schema `a` cannot be found.") is None
    )


@pytest.fixture
def two_flows(mesh_repo: Path) -> Path:
    write_flow(mesh_repo, FlowDef(name="ingest", tasks={"load": ()}))
    write_flow(mesh_repo, FlowDef(name="revenue_ingest", tasks={"load": ()}))
    write_flow(mesh_repo, FlowDef(name="report", tasks={"read": ()}))
    commit_all(mesh_repo, "flows")
    return mesh_repo


def test_the_longest_flow_name_the_schema_ends_with_wins(two_flows: Path) -> None:
    ctx = context.detect(two_flows, env="local", environ={})
    notebook = two_flows / FlowDef(name="report").rel / "read.py"
    rel = FlowDef(name="revenue_ingest").rel
    hint = producers.producer_hint(
        ctx, notebook, ("acme_transport_taxinyc", "dev_x_y_12345678_revenue_ingest", "t")
    )
    assert hint is not None and hint.startswith(f"flow {rel} makes it: ")


def test_no_flow_of_the_mesh_makes_it(two_flows: Path) -> None:
    ctx = context.detect(two_flows, env="local", environ={})
    notebook = two_flows / FlowDef(name="report").rel / "read.py"
    assert producers.producer_hint(ctx, notebook, ("other_catalog", "ingest", "t")) is None
    assert producers.producer_hint(ctx, notebook, ("acme_transport_taxinyc", "misc", "t")) is None
    assert producers.producer_hint(ctx, notebook, ("t",)) is None  # unqualified: schema unknown
    reason = SPARK.format("`other_catalog`.`ingest`.`t`")
    assert producers.explain(reason, None, ctx, notebook) == reason


def test_in_prod_the_producer_is_a_job(two_flows: Path) -> None:
    ctx = context.detect(two_flows, env="prod", environ={})
    notebook = two_flows / FlowDef(name="report").rel / "read.py"
    hint = producers.producer_hint(ctx, notebook, ("acme_transport_taxinyc", "ingest", "t"))
    assert hint == (
        f"flow {FlowDef(name='ingest').rel} makes it: its job transport_taxinyc_prod_ingest must "
        "run first"
    )
