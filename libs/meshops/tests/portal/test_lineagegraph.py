"""Table-level lineage: recorded reads and writes of local runs, products and consumes:, and
the tables notebooks name, merged into one graph whose tables are the same node whatever
deployment's copy was used."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from meshops import lineagegraph
from meshops.cli import app
from meshops.engine.runs import RunStore
from meshops.testing.mesh import FlowDef

pytestmark = pytest.mark.unit

REVENUE = FlowDef(name="revenue").rel
SHARE = FlowDef(domain="finance", project="reporting", name="revenue_share").rel
PER_INHABITANT = "acme_transport_taxinyc.revenue.revenue_per_inhabitant"
BY_BOROUGH = "acme_transport_taxinyc.revenue.revenue_by_borough"


def graph_of(pm: Any) -> lineagegraph.Graph:
    return lineagegraph.local(pm.ctx, pm.mesh, pm.state)


def edges(graph: lineagegraph.Graph) -> dict[tuple[str, str, str], tuple[str, ...]]:
    return {(e.source, e.target, e.kind): e.evidence for e in graph.edges}


def test_runs_products_and_notebooks_merge_into_one_graph(product_mesh: Any) -> None:
    graph = graph_of(product_mesh)
    found = edges(graph)
    # the product: declared by products.yml and written by the local run
    assert found[(REVENUE, PER_INHABITANT, "writes")] == ("declared", "run")
    # finance read transport's *dev* copy; it is the same node as the local and prod copies
    assert found[(PER_INHABITANT, SHARE, "reads")] == ("declared", "run")
    node = graph.tables[PER_INHABITANT]
    assert node.product == "transport.taxinyc.revenue_per_inhabitant"
    assert node.owner == "transport-owners" and node.domain == "transport"
    assert any(name.startswith("acme_transport_taxinyc.dev_") for name in node.seen_as)
    assert any(name.startswith("acme_transport_taxinyc.local_") for name in node.seen_as)
    # named in finance's notebook only: a static read
    assert found[(BY_BOROUGH, SHARE, "reads")] == ("static",)
    # a shared input keeps its own name and has no owner
    assert graph.tables["samples.nyctaxi.trips"].owner == ""
    assert found[("samples.nyctaxi.trips", REVENUE, "reads")] == ("run",)
    # a task reading its sibling task's table stays inside the flow
    assert (BY_BOROUGH, REVENUE, "reads") not in found
    assert "acme_transport_taxinyc.revenue.borough_population" not in graph.tables
    assert graph.flows[SHARE].owner == "finance-owners"
    assert graph.owners == {"transport": "transport-owners", "finance": "finance-owners"}


def test_cross_domain_reads_are_listed(product_mesh: Any) -> None:
    crossing = graph_of(product_mesh).cross_domain()
    assert (PER_INHABITANT, "transport", SHARE) in crossing
    assert (BY_BOROUGH, "transport", SHARE) in crossing


def test_around_a_flow_keeps_its_neighbours_only(product_mesh: Any) -> None:
    around = graph_of(product_mesh).around(SHARE)
    assert set(around.flows) == {SHARE, REVENUE}
    assert "samples.nyctaxi.trips" not in around.tables  # two hops away
    with pytest.raises(Exception, match="not a flow of this mesh"):
        graph_of(product_mesh).around("orgs/acme/domains/x/projects/y/flows/prep/z")


def test_records_from_before_reads_were_kept_still_load(product_mesh: Any) -> None:
    store = RunStore(product_mesh.state.runs_db)
    run = product_mesh.runs[0]
    body = json.loads(json.dumps(run.__dict__, default=lambda o: o.__dict__))
    for task in body["tasks"]:
        del task["reads"]
    body["run_id"] = "old-record"
    with store.write() as db:
        db.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "old-record",
                run.flow,
                run.env,
                run.deployment,
                None,
                1.0,
                2.0,
                "SUCCESS",
                json.dumps(body),
            ),
        )
    old = store.get("old-record")
    assert old is not None and [t.reads for t in old.tasks] == [[], []]
    assert (REVENUE, PER_INHABITANT, "writes") in edges(graph_of(product_mesh))


def cli(pm: Any, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--repo", str(pm.root), "lineage", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_formats(product_mesh: Any) -> None:
    code, text, _ = cli(product_mesh, "--flow", SHARE)
    assert code == 0
    assert "finance (owners: finance-owners)" in text
    assert "reads  transport.taxinyc.revenue_per_inhabitant" in text
    assert "across domains:" in text
    code, mermaid, _ = cli(product_mesh, "--format", "mermaid")
    assert code == 0 and mermaid.startswith("flowchart LR")
    assert 'subgraph finance["finance · finance-owners"]' in mermaid
    code, payload, _ = cli(product_mesh, "--format", "json")
    data = json.loads(payload)
    assert {
        "from": PER_INHABITANT,
        "to": SHARE,
        "kind": "reads",
        "evidence": ["declared", "run"],
    } in data["edges"]
    code, html, _ = cli(product_mesh, "--format", "html")
    assert code == 0 and "<svg" in html and "transport.taxinyc.revenue_per_inhabitant" in html


def test_cli_rejects_an_unknown_format_naming_the_choices(product_mesh: Any) -> None:
    code, _, err = cli(product_mesh, "--format", "dot")
    assert code != 0
    assert "--format dot: expected one of text, mermaid, json, html" in err
