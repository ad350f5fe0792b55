"""Which flows a flow reads: the order `meshops integration` runs their jobs in.

Every table of the mesh lives in a schema named after the flow that writes it (`naming`: a
flow's db is its folder name), and notebooks name tables with brickops, as in
`tablename(tbl="trips", db="ingest", cat=catalog)`. So a notebook's `db=` names the flow that
makes the table, in the catalog its `cat=` says: a string, a module-level name bound to a
string (`transport = "acme_transport_taxinyc"`), or anything else (`catname_from_path()`):
the notebook's own catalog. The notebooks are read as source (ast), never run; a read the
convention does not show is not seen, and the job that needs it says which flow makes the
missing table (`engine.producers`).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from pathlib import Path

from meshops.discover import Flow, Mesh
from meshops.identity import Identity
from meshops.spec import Specs

BRICKOPS_NAMES = frozenset({"tablename", "dbname", "build_table_name"})
"""brickops' functions whose `db=` names a flow's schema."""


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `name = "text"` bindings (the last one wins, as when the notebook runs)."""
    found: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def schemas_named(source: str, own_catalog: str) -> set[tuple[str, str]]:
    """(catalog, db) of every brickops table or db name a notebook's source builds."""
    return {(catalog, db) for catalog, db, _ in names_built(source, own_catalog)}


def tables_named(source: str, own_catalog: str) -> set[tuple[str, str, str]]:
    """(catalog, db, table) of every brickops table name with a literal `tbl=` a notebook's
    source builds (what `meshops lineage` shows as the notebook's static reads)."""
    return {(c, db, tbl) for c, db, tbl in names_built(source, own_catalog) if tbl}


def names_built(source: str, own_catalog: str) -> set[tuple[str, str, str | None]]:
    """(catalog, db, table or None) of every brickops name call with a literal `db=`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()  # not Python (a failing notebook says so when it runs)
    constants = _constants(tree)
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _called(node) not in BRICKOPS_NAMES:
            continue
        given = {k.arg: k.value for k in node.keywords if k.arg}
        db = given.get("db")
        if not isinstance(db, ast.Constant) or not isinstance(db.value, str):
            continue
        cat = given.get("cat")
        catalog = own_catalog
        if isinstance(cat, ast.Constant) and isinstance(cat.value, str):
            catalog = cat.value
        elif isinstance(cat, ast.Name) and cat.id in constants:
            catalog = constants[cat.id]
        tbl = given.get("tbl")
        table = tbl.value if isinstance(tbl, ast.Constant) and isinstance(tbl.value, str) else None
        found.add((catalog, db.value.split(".")[-1], table))
    return found


def reads(
    ident: Identity, flow: Flow, specs: Specs, producers: Mapping[tuple[str, str], str]
) -> set[str]:
    """The flows (repo-relative folders) whose tables `flow`'s task notebooks name, or whose
    data products it consumes, itself left out; `producers` maps (catalog, flow name) to the
    flow that makes that schema."""
    spec = specs.flows[flow.rel]
    catalog = ident.names_for(flow.rel).catalog
    found = set()
    for task in spec.definition.notebook_tasks:
        path: Path = spec.notebook_path(task)
        if path.suffix != ".py" or not path.is_file():
            continue
        for key in schemas_named(path.read_text(encoding="utf-8", errors="replace"), catalog):
            maker = producers.get(key)
            if maker is not None and maker != flow.rel:
                found.add(maker)
    for product_id in spec.definition.consumes:  # declared data products: their producers
        product = specs.products.get(product_id)
        if product is not None and product.flow != flow.rel:
            found.add(product.flow)
    return found


def order(ident: Identity, mesh: Mesh, flows: Sequence[Flow], specs: Specs) -> list[Flow]:
    """`flows` with every flow after the flows among them it reads; otherwise in the given
    order (a cycle, which a deployment could never run either, keeps that order)."""
    producers = {(ident.names_for(f.rel).catalog, f.name): f.rel for f in mesh.flows}
    chosen = {f.rel for f in flows}
    needs = {f.rel: reads(ident, f, specs, producers) & chosen for f in flows}
    done: list[Flow] = []
    waiting = list(flows)
    while waiting:
        ready = [f for f in waiting if needs[f.rel] <= {d.rel for d in done}]
        if not ready:  # a cycle: the rest as given
            done.extend(waiting)
            break
        done.append(ready[0])
        waiting.remove(ready[0])
    return done
