"""Table-level lineage across domains: which flow writes and reads which table, with owners.

Three sources are merged, and each edge says which ones showed it:

- `run`: what local runs recorded (`engine/runs.py`: per task the tables written and read,
  the read side from the catalog plugin's lookups, `TaskReads.java`);
- `declared`: `products.yml` (the producing flow writes the product) and `consumes:` in a
  `deployment.yml` (the flow reads the product);
- `static`: brickops table names with a literal `tbl=` in another flow's schema, found in a
  flow's notebooks by `meshops.lineage` (never run).

**Node identity.** A table is one node whatever deployment's copy was read or written: its
*logical name* is its prod name, `<catalog>.<flow db>.<table>` (catalog and db as the naming
templates give them in prod). A physical name of any env maps back to it the way
`engine.producers` finds a table's flow: the catalog is the project's in every env and the
schema is the flow's db (prod) or ends with `_<flow db>` (dev, local, staging), so
`acme_transport_taxinyc.local_jane_main_1a2b3c4d_revenue.revenue_per_inhabitant` is
`acme_transport_taxinyc.revenue.revenue_per_inhabitant`. A published table is shown by its
product id (`transport.taxinyc.revenue_per_inhabitant`) with the logical name beside it.
Tables no flow of the mesh makes (shared inputs such as `samples`) keep their own name and
have no owner. A flow is a node too, identified by its folder (`Flow.rel`). A read of a
table in the flow's own schema, or one it writes (a task reading its sibling's output),
stays inside the flow and is not an edge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshops import graphsvg, identity, lineage, products
from meshops.errors import MeshopsError

if TYPE_CHECKING:
    from meshops.context import Context
    from meshops.discover import Flow, Mesh
    from meshops.engine.runs import RunRecord
    from meshops.spec import Specs
    from meshops.state import StatePaths

FORMATS = ("text", "mermaid", "json", "html")
RUN, DECLARED, STATIC = "run", "declared", "static"
READS, WRITES = "reads", "writes"


@dataclass(frozen=True)
class TableNode:
    id: str
    """The logical (prod) name, or the physical name of a table no flow of the mesh makes."""
    product: str = ""
    """The product id when a domain publishes it."""
    flow: str = ""
    """The flow whose schema holds it ('' for external tables)."""
    domain: str = ""
    owner: str = ""
    seen_as: tuple[str, ...] = ()
    """Physical names local runs used for it (any deployment)."""

    @property
    def label(self) -> str:
        return self.product or self.id


@dataclass(frozen=True)
class FlowNode:
    id: str
    """The flow's folder (`Flow.rel`)."""
    domain: str
    project: str
    name: str
    owner: str


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str
    """`reads` (table -> flow) or `writes` (flow -> table)."""
    evidence: tuple[str, ...]
    """Which sources show it: `run`, `declared`, `static`."""


@dataclass(frozen=True)
class Graph:
    tables: Mapping[str, TableNode]
    flows: Mapping[str, FlowNode]
    edges: tuple[Edge, ...]
    owners: Mapping[str, str] = field(default_factory=dict)
    """Domain -> owners group (domain.yml)."""

    def around(self, flow_rel: str) -> Graph:
        """The flow, the tables it reads and writes, and the flows on the other side of them
        (who makes what it reads, who reads what it makes)."""
        if flow_rel not in self.flows:
            known = ", ".join(sorted(self.flows)) or "none"
            raise MeshopsError(f"--flow {flow_rel}: not a flow of this mesh; flows: {known}")
        near = {
            e.target if e.source == flow_rel else e.source
            for e in self.edges
            if flow_rel in (e.source, e.target)
        }
        kept = [
            e
            for e in self.edges
            if flow_rel in (e.source, e.target) or (e.source in near or e.target in near)
        ]
        ids = {flow_rel} | {e.source for e in kept} | {e.target for e in kept}
        return Graph(
            tables={k: v for k, v in self.tables.items() if k in ids},
            flows={k: v for k, v in self.flows.items() if k in ids},
            edges=tuple(kept),
            owners=self.owners,
        )

    def cross_domain(self) -> list[tuple[str, str, str]]:
        """(table, producing domain, reading flow) of every read across domains."""
        found = []
        for e in self.edges:
            table = self.tables.get(e.source)
            flow = self.flows.get(e.target)
            if e.kind == READS and table and flow and table.domain and table.domain != flow.domain:
                found.append((table.id, table.domain, flow.id))
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "domains": [{"domain": d, "owners_group": o} for d, o in sorted(self.owners.items())],
            "tables": [
                {
                    "id": t.id,
                    "product": t.product or None,
                    "flow": t.flow or None,
                    "domain": t.domain or None,
                    "owner": t.owner or None,
                    "seen_as": list(t.seen_as),
                }
                for t in sorted(self.tables.values(), key=lambda t: t.id)
            ],
            "flows": [
                {"id": f.id, "domain": f.domain, "project": f.project, "owner": f.owner}
                for f in sorted(self.flows.values(), key=lambda f: f.id)
            ],
            "edges": [
                {"from": e.source, "to": e.target, "kind": e.kind, "evidence": list(e.evidence)}
                for e in self.edges
            ],
        }


# ------------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Where:
    """A flow's table names in prod: its catalog and its db (the prod schema)."""

    flow: Flow
    catalog: str
    db: str


class LogicalNames:
    """Physical names of any deployment -> logical names and the flow whose schema holds them."""

    def __init__(self, ctx: Context, mesh: Mesh) -> None:
        prod = identity.of(ctx).with_env("prod")
        self.where: dict[str, _Where] = {}
        for flow in mesh.flows:
            names = prod.names_for(flow.rel)
            self.where[flow.rel] = _Where(flow, names.catalog, names.schema.split(".", 1)[-1])
        self.by_catalog: dict[str, list[_Where]] = {}
        for w in self.where.values():
            self.by_catalog.setdefault(w.catalog, []).append(w)
        for found in self.by_catalog.values():
            found.sort(key=lambda w: -len(w.db))  # the longest db first: `x_revenue_share`

    def logical(self, physical: str) -> tuple[str, Flow | None]:
        parts = physical.lower().split(".")
        if len(parts) != 3:
            return physical.lower(), None
        catalog, schema, table = parts
        for w in self.by_catalog.get(catalog, []):
            if schema == w.db or schema.endswith(f"_{w.db}"):
                return f"{w.catalog}.{w.db}.{table}", w.flow
        return physical.lower(), None

    def of(self, flow_rel: str, table: str) -> str:
        w = self.where[flow_rel]
        return f"{w.catalog}.{w.db}.{table}"


@dataclass
class _Builder:
    names: LogicalNames
    owners: dict[str, str]
    tables: dict[str, TableNode] = field(default_factory=dict)
    evidence: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    seen: dict[str, set[str]] = field(default_factory=dict)

    def table(self, logical: str, maker: Flow | None, product: str = "") -> str:
        known = self.tables.get(logical)
        if known is None or (product and not known.product):
            domain = maker.domain if maker else ""
            self.tables[logical] = TableNode(
                id=logical,
                product=product or (known.product if known else ""),
                flow=maker.rel if maker else "",
                domain=domain,
                owner=self.owners.get(domain, ""),
            )
        return logical

    def physical(self, name: str) -> str:
        logical, maker = self.names.logical(name)
        self.table(logical, maker)
        self.seen.setdefault(logical, set()).add(name.lower())
        return logical

    def edge(self, source: str, target: str, kind: str, evidence: str) -> None:
        self.evidence.setdefault((source, target, kind), set()).add(evidence)


def build(
    ctx: Context,
    mesh: Mesh,
    specs: Specs,
    published: products.Products,
    runs: Iterable[RunRecord] = (),
) -> Graph:
    """The mesh's lineage from `runs` (local run records), `published` (products and
    `consumes:`) and the flows' notebooks (`specs`)."""
    names = LogicalNames(ctx, mesh)
    owners = {rel.rsplit("/", 1)[-1]: d.owners_group for rel, d in specs.domains.items()}
    b = _Builder(names, owners)
    flows = {
        f.rel: FlowNode(f.rel, f.domain, f.project, f.name, owners.get(f.domain, ""))
        for f in mesh.flows
    }
    for product in published.by_id.values():
        if product.flow in names.where:
            maker = names.where[product.flow].flow
            node = b.table(names.of(product.flow, product.table), maker, product.id)
            b.edge(product.flow, node, WRITES, DECLARED)
    for product_id, consumers in published.consumers.items():
        consumed = published.by_id.get(product_id)
        if consumed is None or consumed.flow not in names.where:
            continue
        node = names.of(consumed.flow, consumed.table)
        for consumer in consumers:
            b.edge(node, consumer, READS, DECLARED)
    _static_reads(b, mesh, specs)
    for run in runs:
        if run.flow not in flows:
            continue  # a flow since moved or deleted
        for task in run.tasks:
            for name in task.tables:
                b.edge(run.flow, b.physical(name), WRITES, RUN)
            for name in task.reads:
                b.edge(b.physical(name), run.flow, READS, RUN)
    written = {(s, t) for s, t, k in b.evidence if k == WRITES}

    def inside(table: str, flow: str) -> bool:
        return (flow, table) in written or b.tables[table].flow == flow

    edges = tuple(
        Edge(s, t, k, tuple(sorted(ev)))
        for (s, t, k), ev in sorted(b.evidence.items())
        if not (k == READS and inside(s, t))
    )
    linked = {e.source for e in edges} | {e.target for e in edges}
    tables = {
        k: TableNode(v.id, v.product, v.flow, v.domain, v.owner, tuple(sorted(b.seen.get(k, ()))))
        for k, v in b.tables.items()
        if k in linked  # a table only its own flow reads is inside that flow
    }
    return Graph(tables, flows, edges, owners)


def _static_reads(b: _Builder, mesh: Mesh, specs: Specs) -> None:
    """Tables of other flows that a flow's notebooks name with brickops (a flow writes only its
    own schema, so naming another flow's table is reading it)."""
    for flow in mesh.flows:
        spec = specs.flows.get(flow.rel)
        if spec is None:
            continue
        own = b.names.where[flow.rel].catalog
        for task in spec.definition.notebook_tasks:
            path = spec.notebook_path(task)
            if path.suffix != ".py" or not path.is_file():
                continue
            source = path.read_text(encoding="utf-8", errors="replace")
            for catalog, db, table in lineage.tables_named(source, own):
                logical, maker = b.names.logical(f"{catalog}.{db}.{table}")
                if maker is not None and maker.rel != flow.rel:
                    b.table(logical, maker)
                    b.edge(logical, flow.rel, READS, STATIC)


def load(ctx: Context, mesh: Mesh, runs: Iterable[RunRecord] = ()) -> Graph:
    """`build` with the mesh's specs and products read here (every file validated)."""
    from meshops.spec import load_specs

    specs = load_specs(mesh, list(mesh.flows))
    return build(ctx, mesh, specs, products.load(mesh), runs)


# ------------------------------------------------------------------------------- showing


def _flow_label(flow: FlowNode) -> str:
    return f"{flow.domain}/{flow.project}/{flow.name}"


def text(graph: Graph) -> str:
    """Per domain (with its owners), per flow: what it reads and writes, and from where."""
    lines: list[str] = []
    by_domain: dict[str, list[FlowNode]] = {}
    for flow in graph.flows.values():
        by_domain.setdefault(flow.domain, []).append(flow)
    for domain in sorted(by_domain):
        lines.append(f"{domain} (owners: {graph.owners.get(domain) or '?'})")
        for flow in sorted(by_domain[domain], key=lambda f: f.id):
            lines.append(f"  {_flow_label(flow)}  {flow.id}")
            for e in graph.edges:
                if e.target == flow.id and e.kind == READS:
                    lines.append(f"    reads  {_table_text(graph, e.source)}  [{_ev(e)}]")
            for e in graph.edges:
                if e.source == flow.id and e.kind == WRITES:
                    lines.append(f"    writes {_table_text(graph, e.target)}  [{_ev(e)}]")
    crossing = graph.cross_domain()
    if crossing:
        lines.append("across domains:")
        for table, domain, reader in crossing:
            node = graph.tables[table]
            reader_domain = graph.flows[reader].domain
            lines.append(
                f"  {node.label} ({domain}) -> {_flow_label(graph.flows[reader])} ({reader_domain})"
            )
    return "\n".join(lines)


def _ev(edge: Edge) -> str:
    return ", ".join(edge.evidence)


def _table_text(graph: Graph, table_id: str) -> str:
    node = graph.tables[table_id]
    facts = [node.id] if node.product else []
    facts.append(f"owner {node.owner}" if node.owner else "external")
    return f"{node.label} ({', '.join(facts)})"


def mermaid(graph: Graph) -> str:
    """A Mermaid flowchart: a subgraph per domain (titled with its owners), tables as
    cylinders, flows as boxes; static reads dashed."""
    ids: dict[str, str] = {}
    for i, key in enumerate(sorted(graph.flows)):
        ids[key] = f"f{i}"
    for i, key in enumerate(sorted(graph.tables)):
        ids[key] = f"t{i}"

    def quoted(text: str) -> str:
        return '"' + text.replace('"', "#quot;") + '"'

    lines = ["flowchart LR"]
    domains = sorted(
        {f.domain for f in graph.flows.values()}
        | {t.domain for t in graph.tables.values() if t.domain}
    )
    for domain in domains:
        owner = graph.owners.get(domain, "")
        lines.append(f"  subgraph {domain}[{quoted(f'{domain} · {owner}' if owner else domain)}]")
        for key in sorted(k for k, f in graph.flows.items() if f.domain == domain):
            lines.append(f"    {ids[key]}[{quoted(_flow_label(graph.flows[key]))}]")
        for key in sorted(k for k, t in graph.tables.items() if t.domain == domain):
            lines.append(f"    {ids[key]}[({quoted(graph.tables[key].label)})]")
        lines.append("  end")
    for key in sorted(k for k, t in graph.tables.items() if not t.domain):
        lines.append(f"  {ids[key]}[({quoted(key)})]")
    for e in graph.edges:
        arrow = "-.->" if e.evidence == (STATIC,) else "-->"
        lines.append(f"  {ids[e.source]} {arrow} {ids[e.target]}")
    return "\n".join(lines)


def svg(graph: Graph, *, href: Mapping[str, str] | None = None) -> str:
    """The graph as inline SVG (`graphsvg`); `href`: node id -> link (the portal's pages)."""
    links = href or {}
    nodes = [
        graphsvg.Node(
            id=f.id,
            lines=(_flow_label(f), f"owner {f.owner}" if f.owner else "flow"),
            kind=f"flow domain-{f.domain}",
            href=links.get(f.id, ""),
            title=f.id,
        )
        for f in sorted(graph.flows.values(), key=lambda f: f.id)
    ]
    for t in sorted(graph.tables.values(), key=lambda t: t.id):
        second = t.id if t.product else (f"owner {t.owner}" if t.owner else "external")
        kind = "product" if t.product else ("table" if t.domain else "external")
        nodes.append(
            graphsvg.Node(
                id=t.id,
                lines=(t.label, second),
                kind=f"{kind} domain-{t.domain or 'none'}",
                href=links.get(t.id, ""),
                title=t.id,
            )
        )
    arrows = [
        graphsvg.Arrow(e.source, e.target, "static" if e.evidence == (STATIC,) else e.kind)
        for e in graph.edges
    ]
    return graphsvg.render(nodes, arrows, title="table lineage")


def show(graph: Graph, fmt: str) -> str:
    """`graph` in one of FORMATS (html: a standalone page with the SVG)."""
    if fmt == "text":
        return text(graph)
    if fmt == "mermaid":
        return mermaid(graph)
    if fmt == "json":
        return json.dumps(graph.as_json(), indent=2)
    if fmt == "html":
        from meshops import portal

        return portal.lineage_page(graph)
    raise MeshopsError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")


RUNS_SHOWN = 500
"""How many of the newest local runs lineage reads (older ones add nothing new, mostly)."""


def local(ctx: Context, mesh: Mesh, state: StatePaths, flow: str | None = None) -> Graph:
    """The lineage of the mesh (or around `flow`, a flow folder as `--flow` takes it) from the
    finished local runs recorded in `state`, the products and the notebooks."""
    from meshops.engine.runs import RunStore

    runs = [r for r in RunStore(state.runs_db).list(RUNS_SHOWN) if r.ended is not None]
    graph = load(ctx, mesh, runs)
    return graph.around(mesh.find(flow).rel) if flow else graph
