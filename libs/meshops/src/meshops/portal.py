"""The mesh portal: a static HTML site of the mesh, readable from the file system (no server,
no script, nothing fetched): domains and owners, products with their schema, contract status
and consumers, each flow's task DAG and lineage, recent local runs, and ML models with their
champion.

Everything comes from files: the mesh's YAML (`spec`, `products`), the run records and the
local MLflow registry of a state folder. A product's contract status is the one its newest
local build recorded: local runs check the contract of every product they write and fail
the writing task naming the product (`engine.resolve.contract_failures`), so the site needs
no Spark. Pages are jinja2 templates (`templates/portal/`); graphs are inline SVG (`graphsvg`).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from meshops import graphsvg, lineagegraph, products
from meshops.errors import InvalidInput

if TYPE_CHECKING:
    from meshops.context import Context
    from meshops.discover import Flow, Mesh
    from meshops.engine.runs import RunRecord
    from meshops.spec import Specs
    from meshops.state import StatePaths

TEMPLATES = Path(__file__).parent / "templates" / "portal"
RUNS_SHOWN = 50
OK, BREAKING, NOT_BUILT = "ok", "breaking", "not built"


@dataclass(frozen=True)
class Contract:
    """A product's contract status as its newest local build recorded it."""

    state: str
    """`ok`, `breaking` or `not built`."""
    detail: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class Model:
    """A registered model of the local MLflow registry."""

    name: str
    flow: str
    """The flow whose schema holds it ('' when none does)."""
    latest: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Alias (`champion`, `challenger`...) -> version."""

    @property
    def champion(self) -> str:
        return self.aliases.get("champion", "")


def page_of(flow_rel: str) -> str:
    """The site-relative page of a flow: `flows/<org>-<domain>-<project>-<kind>-<name>.html`."""
    parts = flow_rel.split("/")
    org, domain, project, kind, name = parts[1], parts[3], parts[5], parts[7], parts[8]
    return f"flows/{org}-{domain}-{project}-{kind}-{name}.html"


def contract_status(product: products.Product, runs: Sequence[RunRecord]) -> Contract:
    """The contract status of `product` from its producer's newest finished run that wrote it
    or reported it broken (`runs`: newest first)."""
    marker = f"data contract of {product.id} broken"
    suffix = f".{product.table}".lower()
    for run in runs:
        if run.flow != product.flow or run.ended is None:
            continue
        for task in run.tasks:
            if marker in task.error:
                detail = task.error[task.error.index(marker) :]
                return Contract(BREAKING, detail, run.run_id)
        if run.status == "SUCCESS" and any(
            name.lower().endswith(suffix) for task in run.tasks for name in task.tables
        ):
            return Contract(OK, f"as built by run {run.run_id}", run.run_id)
    return Contract(NOT_BUILT, f"run `meshops run {product.flow}` to build it")


def models(state: StatePaths, names: lineagegraph.LogicalNames) -> list[Model]:
    """The models of the state folder's MLflow registry (none when it has no registry)."""
    if not state.mlflow_db.is_file():
        return []
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{state.mlflow_db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = []
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name='{model.name}'")
        latest = max((int(v.version) for v in versions), default=0)
        _, flow = names.logical(model.name)
        aliases = {alias: str(version) for alias, version in (model.aliases or {}).items()}
        found.append(Model(model.name, flow.rel if flow else "", str(latest or ""), aliases))
    return sorted(found, key=lambda m: m.name)


def task_dag(specs: Specs, flow_rel: str) -> str:
    """The flow's tasks and their `depends_on` as inline SVG."""
    spec = specs.flows[flow_rel]
    tasks = spec.definition.tasks
    nodes = [
        graphsvg.Node(
            t.task_key,
            (t.task_key, "pipeline" if t.pipeline_task else (t.notebook or f"{t.task_key}.py")),
            kind="task",
        )
        for t in tasks
    ]
    arrows = [graphsvg.Arrow(d, t.task_key, "depends") for t in tasks for d in t.dependencies]
    return graphsvg.render(nodes, arrows, title=f"tasks of {flow_rel}")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda t: dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
    env.filters["age"] = age
    return env


def age(value: dt.timedelta) -> str:
    """A freshness as products.yml spells it: `1d`, `6h`, `30m` (the largest whole unit)."""
    minutes = int(value.total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def _links(graph: lineagegraph.Graph, root: str) -> dict[str, str]:
    """Node id -> page, relative to a page `root` ('' for the top folder, '../' below it)."""
    links = {rel: root + page_of(rel) for rel in graph.flows}
    for table in graph.tables.values():
        if table.product:
            links[table.id] = f"{root}products.html#{table.product}"
    return links


def lineage_page(graph: lineagegraph.Graph) -> str:
    """A standalone page of `graph` (`meshops lineage --format html`)."""
    return (
        _environment()
        .get_template("lineage.html")
        .render(
            root="",
            standalone=True,
            graph=graph,
            svg=lineagegraph.svg(graph),
            crossing=graph.cross_domain(),
            mermaid=lineagegraph.mermaid(graph),
        )
    )


@dataclass(frozen=True)
class Site:
    """What `build` wrote."""

    folder: Path
    pages: tuple[Path, ...]


def build(ctx: Context, mesh: Mesh, state: StatePaths, out: Path) -> Site:
    """Write the portal of `mesh` into `out` (emptied first when it holds an earlier portal)."""
    from meshops.engine.runs import RunStore
    from meshops.spec import load_specs

    specs = load_specs(mesh, list(mesh.flows))
    catalog = products.load(mesh)
    runs = RunStore(state.runs_db).list(RUNS_SHOWN) if state.runs_db.is_file() else []
    finished = [r for r in runs if r.ended is not None]
    graph = lineagegraph.build(ctx, mesh, specs, catalog, finished)
    names = lineagegraph.LogicalNames(ctx, mesh)
    _prepare(out)
    env = _environment()
    flows = sorted(mesh.flows, key=lambda f: f.rel)
    contracts = {p.id: contract_status(p, finished) for p in catalog.by_id.values()}
    common: dict[str, Any] = {
        "domains": _domains(specs, mesh),
        "flows": flows,
        "page_of": page_of,
        "products": sorted(catalog.by_id.values(), key=lambda p: p.id),
        "consumers": catalog.consumers,
        "contracts": contracts,
        "runs": runs,
        "models": models(state, names),
        "graph": graph,
        "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "standalone": False,
    }
    pages: list[Path] = []

    def write(name: str, template: str, root: str = "", **extra: Any) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        html = env.get_template(template).render(**common, root=root, **extra)
        path.write_text(html, encoding="utf-8")
        pages.append(path)

    write("index.html", "index.html")
    write("products.html", "products.html")
    write(
        "lineage.html",
        "lineage.html",
        svg=lineagegraph.svg(graph, href=_links(graph, "")),
        crossing=graph.cross_domain(),
        mermaid=lineagegraph.mermaid(graph),
    )
    write("runs.html", "runs.html")
    write("models.html", "models.html")
    for flow in flows:
        around = graph.around(flow.rel)
        spec = specs.flows[flow.rel]
        write(
            page_of(flow.rel),
            "flow.html",
            root="../",
            flow=flow,
            spec=spec.definition,
            dag=task_dag(specs, flow.rel),
            lineage_svg=lineagegraph.svg(around, href=_links(around, "../")),
            publishes=catalog.of_flow(flow.rel),
            consumes=catalog.consumes.get(flow.rel, ()),
            flow_runs=[r for r in runs if r.flow == flow.rel][:10],
        )
    return Site(out, tuple(pages))


MARKER = ".meshops-portal"
"""A file in a folder `build` wrote: only such a folder (or an empty one) is emptied."""


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidInput(f"--out {out}: a file, not a folder: give an empty or new folder")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InvalidInput(
                f"--out {out}: the folder has files and no {MARKER}: give an empty or new folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by meshops portal; emptied on the next build\n")


@dataclass(frozen=True)
class DomainView:
    name: str
    owners_group: str
    contacts: tuple[str, ...]
    description: str
    readers: tuple[str, ...]
    flows: tuple[Flow, ...]


def _domains(specs: Specs, mesh: Mesh) -> list[DomainView]:
    found = []
    for rel, domain in sorted(specs.domains.items()):
        found.append(
            DomainView(
                name=rel.rsplit("/", 1)[-1],
                owners_group=domain.owners_group,
                contacts=tuple(domain.contacts),
                description=domain.description or "",
                readers=tuple(domain.readers),
                flows=tuple(f for f in mesh.flows if f.domain_rel == rel),
            )
        )
    return found
