"""Data products: products.yml and consumes: validated with file, line and key; contract
checks; where a deployment's reads resolve; --downstream (no Spark)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType
from typer.testing import CliRunner

import dataproducts
from meshops import context, discover, identity, plan, products, resolution, testselect
from meshops.cli import app
from meshops.errors import InvalidFiles, MeshopsError
from meshops.spec import load_specs
from meshops.testing.mesh import FlowDef, commit_all, git, write_flow

pytestmark = pytest.mark.unit

TRANSPORT = "orgs/acme/domains/transport/projects/taxinyc/flows/prep/revenue"
FINANCE = "orgs/acme/domains/finance/projects/reporting/flows/prep/revenue_share"
PER_INHABITANT = "transport.taxinyc.revenue_per_inhabitant"
BY_BOROUGH = "transport.taxinyc.revenue_by_borough"
PRODUCER = FlowDef(name="revenue", tasks={"aggregate": ()})
CONSUMER = FlowDef(domain="finance", project="reporting", name="share", tasks={"share": ()})
PRODUCTS_YML = """products:
  by_borough:
    project: taxinyc
    flow: revenue
    description: revenue per borough
    freshness: 1d
    columns:
      - {name: borough, type: string}
      - {name: revenue, type: double}
"""


def small_mesh(root: Path, consumes: str = "[transport.taxinyc.by_borough]") -> None:
    write_flow(root, PRODUCER)
    folder = write_flow(root, CONSUMER)
    (root / "orgs/acme/domains/transport/products.yml").write_text(PRODUCTS_YML)
    spec = folder / "deployment.yml"
    spec.write_text(spec.read_text() + f"consumes: {consumes}\n")


# ------------------------------------------------------------------ the example mesh


def test_the_example_mesh_publishes_transport_revenue_and_finance_consumes_it(
    meshops_repo_root: Path,
) -> None:
    mesh = discover.scan(meshops_repo_root)
    found = products.load(mesh)
    assert [p.id for p in found.of_flow(TRANSPORT)] == [BY_BOROUGH, PER_INHABITANT]
    assert found.consumers[PER_INHABITANT] == (FINANCE,)
    assert found.consumers[BY_BOROUGH] == (FINANCE,)
    product = found.by_id[PER_INHABITANT]
    assert product.owner == "transport-owners"  # from domain.yml
    assert product.freshness is not None and product.freshness.days == 1
    assert [c.name for c in product.columns][:2] == ["borough", "population"]
    assert found.downstream([TRANSPORT]) == [FINANCE]
    assert found.downstream([FINANCE]) == []
    specs = load_specs(mesh, [mesh.find(FINANCE)])
    assert specs.flows[FINANCE].definition.consumes == [PER_INHABITANT, BY_BOROUGH]
    assert set(specs.products) >= {PER_INHABITANT, BY_BOROUGH}


# ------------------------------------------------------------------ validation


def test_consuming_an_unpublished_product_names_file_line_and_key(mesh_repo: Path) -> None:
    small_mesh(mesh_repo, "[transport.taxinyc.by_borough, transport.taxinyc.nothing]")
    mesh = discover.scan(mesh_repo)
    with pytest.raises(InvalidFiles) as caught:
        load_specs(mesh, [mesh.find(CONSUMER.rel)])
    (problem,) = caught.value.problems
    assert problem.file == f"{CONSUMER.rel}/deployment.yml"
    assert problem.key == "consumes[1]"
    assert problem.line == 4  # the consumes: line
    assert "transport.taxinyc.nothing is not a published product" in problem.message
    assert "transport.taxinyc.by_borough" in problem.message  # what is published instead


def test_a_malformed_product_id_is_a_schema_error(mesh_repo: Path) -> None:
    small_mesh(mesh_repo, "[by_borough]")
    mesh = discover.scan(mesh_repo)
    with pytest.raises(InvalidFiles) as caught:
        load_specs(mesh, [mesh.find(CONSUMER.rel)])
    (problem,) = caught.value.problems
    assert problem.key == "consumes[0]"
    assert "expected a product id <domain>.<project>.<table>" in problem.message


def test_a_domain_that_publishes_nothing_cannot_be_consumed(mesh_repo: Path) -> None:
    small_mesh(mesh_repo, "[finance.reporting.share]")
    mesh = discover.scan(mesh_repo)
    with pytest.raises(InvalidFiles) as caught:
        load_specs(mesh, [mesh.find(CONSUMER.rel)])
    assert "domain 'finance' publishes no product of project 'reporting'" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ("flow: revenue", "products.by_borough.flow", "no flow 'nope' in project 'taxinyc'"),
        ("type: double", "products.by_borough.columns[1].type", "expected a Spark SQL type"),
        ("freshness: 1d", "products.by_borough.freshness", "expected a maximum age"),
    ],
)
def test_a_bad_products_file_names_file_line_and_key(
    mesh_repo: Path, change: str, key: str, expected: str
) -> None:
    small_mesh(mesh_repo)
    path = mesh_repo / "orgs/acme/domains/transport/products.yml"
    bad = {"flow: revenue": "flow: nope", "type: double": "type: dubble"}.get(
        change, "freshness: soon"
    )
    path.write_text(PRODUCTS_YML.replace(change, bad))
    mesh = discover.scan(mesh_repo)
    with pytest.raises(InvalidFiles) as caught:
        products.published(mesh)
    (problem,) = caught.value.problems
    assert (problem.file, problem.key) == ("orgs/acme/domains/transport/products.yml", key)
    assert problem.line is not None and expected in problem.message
    # the producer's own commands report it too (its domain publishes)
    with pytest.raises(InvalidFiles, match="products.yml"):
        load_specs(mesh, [mesh.find(PRODUCER.rel)])


def test_spark_sql_types_as_simple_string_prints_them() -> None:
    for good in ("string", "bigint", "decimal(10,2)", "array<string>", "map<string,bigint>"):
        assert products.sql_type_problem(good) is None, good
    assert products.sql_type_problem("struct<a:bigint,b:decimal(10,2)>") is None
    for bad in ("long", "varchar", "array<strng>", "array<string", ""):
        assert products.sql_type_problem(bad) is not None, bad


# ------------------------------------------------------------------ contracts


def test_a_dropped_column_or_changed_type_breaks_the_contract_added_columns_do_not(
    meshops_repo_root: Path,
) -> None:
    catalog = products.load(discover.scan(meshops_repo_root))
    product = catalog.by_id[BY_BOROUGH]
    fine = StructType(
        [
            StructField("borough", StringType()),
            StructField("trip_count", LongType()),
            StructField("total_fare", DoubleType()),
            StructField("total_tips", DoubleType()),
            StructField("total_revenue", DoubleType()),
            StructField("new_column", StringType()),  # added: fine
        ]
    )
    assert products.check(product, fine) == []
    broken = StructType([f for f in fine.fields if f.name != "total_tips"])
    broken.fields[1] = StructField("trip_count", StringType())
    breaches = products.check(product, broken)
    assert [(b.column, b.what) for b in breaches] == [
        ("trip_count", "type bigint -> string"),
        ("total_tips", "dropped"),
    ]
    message = products.breach_message(catalog, product, breaches)
    assert BY_BOROUGH in message and "total_tips: dropped" in message
    assert f"consumers affected: {FINANCE}" in message


# ------------------------------------------------------------------ resolution in plans


def ctx_of(root: Path, env: str) -> context.Context:
    return context.Context(
        root, env, "jane.doe@acme.example", "feat-finance", "a" * 40, None, "", origin="test"
    )  # type: ignore[arg-type]


def test_a_dev_plan_of_finance_alone_reads_transport_prod_tables(meshops_repo_root: Path) -> None:
    mesh = discover.scan(meshops_repo_root)
    ident = identity.of(ctx_of(meshops_repo_root, "dev"))
    (job,) = plan.build(ident, mesh, [mesh.find(FINANCE)])
    params = {p.name: p.default for p in job.settings.parameters or []}
    assert identity.products_of(params) == {
        PER_INHABITANT: "acme_transport_taxinyc.revenue.revenue_per_inhabitant",
        BY_BOROUGH: "acme_transport_taxinyc.revenue.revenue_by_borough",
    }
    assert {r.source for r in job.product_reads} == {products.PROD}
    # deployed with its producer (both changed on the branch): the same deployment's tables
    both = plan.build(ident, mesh, [mesh.find(TRANSPORT), mesh.find(FINANCE)])
    (finance,) = [p for p in both if p.flow.rel == FINANCE]
    reads = {r.product: r for r in finance.product_reads}
    assert reads[PER_INHABITANT].source == products.SAME_DEPLOYMENT
    assert reads[PER_INHABITANT].table == (
        f"acme_transport_taxinyc.{ident.id}_revenue.revenue_per_inhabitant"
    )
    # prod reads prod; a job run reads its parameters back as they were planned
    prod = identity.of(ctx_of(meshops_repo_root, "prod"))
    (prod_job,) = plan.build(prod, mesh, [mesh.find(FINANCE)])
    assert {r.table for r in prod_job.product_reads} == {r.table for r in job.product_reads}
    back = resolution.from_parameters(ident, products.published(mesh), params)
    assert back is not None and {r.source for r in back} == {products.PROD}


def test_the_products_parameter_round_trips_and_refuses_garbage() -> None:
    tables = {"a.b.c": "x.y.c"}
    assert identity.products_of(identity.products_parameter(tables)) == tables
    assert identity.products_parameter({}) == {}
    assert identity.products_of({}) is None
    with pytest.raises(MeshopsError, match="not a JSON object"):
        identity.products_of({identity.PRODUCTS_PARAMETER: "[1]"})


def test_a_notebook_reads_what_its_widgets_resolved() -> None:
    class Widgets:
        def getAll(self) -> dict[str, str]:  # Databricks' name
            return identity.products_parameter({"a.b.c": "cat.schema.c"})

    class DbUtils:
        widgets = Widgets()

    assert dataproducts.table("a.b.c", DbUtils()) == "cat.schema.c"
    with pytest.raises(dataproducts.UnresolvedProduct, match="list it under consumes"):
        dataproducts.table("a.b.d", DbUtils())
    # the notebook side reads the key meshops writes, and refuses the same garbage
    assert dataproducts.PARAMETER == identity.PRODUCTS_PARAMETER
    with pytest.raises(dataproducts.UnresolvedProduct, match="not a JSON object"):
        dataproducts.resolved({identity.PRODUCTS_PARAMETER: "[1]"})


# ------------------------------------------------------------------ --downstream


def test_downstream_adds_the_consumers_of_a_changed_producer(meshops_repo_root: Path) -> None:
    mesh = discover.scan(meshops_repo_root)
    changed = [f"{TRANSPORT}/revenue_by_borough.py"]
    plain = testselect.select(mesh, changed)
    assert f"{FINANCE}/tests" not in plain.paths
    more = testselect.select(mesh, changed, downstream=True)
    assert f"{FINANCE}/tests" in more.paths and f"{TRANSPORT}/tests" in more.paths


def test_plan_changed_since_downstream_plans_the_consumer_too(
    mesh_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MESHOPS_ENV", "MESHOPS_USER", "MESHOPS_BRANCH", "MESHOPS_COMMIT"):
        monkeypatch.delenv(name, raising=False)
    small_mesh(mesh_repo)
    commit_all(mesh_repo, "producer and consumer")
    git(mesh_repo, "checkout", "-q", "-b", "feat-x")
    notebook = mesh_repo / PRODUCER.rel / "aggregate.py"
    notebook.write_text(notebook.read_text() + "\n# changed\n")
    commit_all(mesh_repo, "producer changed")
    runner = CliRunner()

    def planned(*extra: str) -> list[str]:
        result = runner.invoke(
            app,
            ["--repo", str(mesh_repo), "plan", "--env", "dev", "--changed-since", "main", *extra],
        )
        assert result.exit_code == 0, result.stderr
        return sorted(p["flow"] for p in json.loads(result.stdout))

    assert planned("--json") == [PRODUCER.rel]
    assert planned("--json", "--downstream") == sorted([PRODUCER.rel, CONSUMER.rel])
    result = runner.invoke(app, ["--repo", str(mesh_repo), "plan", "--downstream"])
    assert result.exit_code == 2 and "pass --changed-since" in result.stderr


def test_integration_runs_a_consumer_after_the_producer_of_what_it_consumes(
    meshops_repo_root: Path,
) -> None:
    from meshops import lineage

    mesh = discover.scan(meshops_repo_root)
    flows = [mesh.find(FINANCE), mesh.find(TRANSPORT)]  # the notebook names no transport table
    specs = load_specs(mesh, flows)
    ident = identity.of(ctx_of(meshops_repo_root, "staging"))
    assert [f.rel for f in lineage.order(ident, mesh, flows, specs)] == [TRANSPORT, FINANCE]
