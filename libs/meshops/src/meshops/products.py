"""Data products: the tables a domain publishes, who consumes them, and their contracts.

A domain lists what it publishes in `products.yml` beside its `domain.yml`; a product's id is
`<domain>.<project>.<table>` and its producing flow writes it in the flow's own schema. A flow
declares the products it reads with `consumes:` in its `deployment.yml`. This module reads and
checks both (every problem with file, line and key), and checks a written table's schema
against its product's declared columns (the data contract). A notebook reads a product with
`table(id)`: the table its run resolved (a `Resolution`: same deployment, prod, newest local
build), decided by `meshops.resolution` for a deployment and `engine.resolve` for a local run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field

from meshops import yamldoc
from meshops.errors import InvalidFiles, Problem
from meshops.yamldoc import StrictModel

if TYPE_CHECKING:
    from meshops.discover import Flow, Mesh

PRODUCTS_FILE = "products.yml"
DOMAIN_FILE = "domain.yml"
DEPLOYMENT_FILE = "deployment.yml"
PRODUCT_ID = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,254}")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_FRESHNESS = re.compile(r"([1-9][0-9]{0,4})([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SIMPLE_TYPES = frozenset(
    {
        "string",
        "boolean",
        "tinyint",
        "smallint",
        "int",
        "bigint",
        "float",
        "double",
        "date",
        "timestamp",
        "timestamp_ntz",
        "binary",
        "void",
        "variant",
    }
)
_DECIMAL = re.compile(r"decimal\(([1-9][0-9]?),([0-9][0-9]?)\)")


# ------------------------------------------------------------------------------- the file


def _name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"got {value!r}; expected a name of lowercase letters, digits and '_'")
    return value


def _column_name(value: str) -> str:
    if not _COLUMN.fullmatch(value):
        raise ValueError(f"got {value!r}; expected a column name of letters, digits and '_'")
    return value


def sql_type_problem(value: str) -> str | None:
    """Why `value` is not a Spark SQL type as `DataType.simpleString()` prints it; None: it is.
    Nested types (`array<...>`, `map<...>`, `struct<...>`) are checked for balanced brackets
    and known leaf types."""
    text = value.strip()
    if text != value or not text:
        return f"got {value!r}; expected a Spark SQL type such as string, bigint or decimal(10,2)"
    if text in _SIMPLE_TYPES or _DECIMAL.fullmatch(text):
        return None
    if text.startswith(("array<", "map<", "struct<")) and text.endswith(">"):
        depth = 0
        for char in text:
            depth += {"<": 1, ">": -1}.get(char, 0)
            if depth < 0:
                break
        if depth == 0:
            leaves = re.split(r"[<>,]", text)
            bad = [
                leaf
                for leaf in leaves
                if leaf
                and leaf not in ("array", "map", "struct")
                and leaf.rsplit(":", 1)[-1] not in _SIMPLE_TYPES
                and not _DECIMAL.fullmatch(leaf.rsplit(":", 1)[-1])
                and not re.fullmatch(r"[0-9]+\)", leaf)  # the scale of a decimal(p,s)
                and not re.fullmatch(r"(?:\w+:)?decimal\([0-9]+", leaf)
            ]
            if not bad:
                return None
    known = ", ".join(sorted(_SIMPLE_TYPES))
    return (
        f"got {value!r}; expected a Spark SQL type as DataType.simpleString() prints it "
        f"({known}, decimal(p,s), array<..>, map<..,..>, struct<name:type,..>)"
    )


def _sql_type(value: str) -> str:
    problem = sql_type_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _freshness(value: str) -> str:
    if not _FRESHNESS.fullmatch(value):
        raise ValueError(f"got {value!r}; expected a maximum age such as 30m, 6h, 1d or 1w")
    return value


Name = Annotated[str, AfterValidator(_name)]
ColumnName = Annotated[str, AfterValidator(_column_name)]
SqlType = Annotated[str, AfterValidator(_sql_type)]
Freshness = Annotated[str, AfterValidator(_freshness)]


class ColumnSpec(StrictModel):
    """One declared column of a product: name, Spark SQL type, what it means."""

    name: ColumnName
    type: SqlType
    description: str = ""


class ProductSpec(StrictModel):
    """One published table as `products.yml` declares it (its key is the table name)."""

    project: Name
    flow: Name
    description: Annotated[str, Field(min_length=1)]
    owner: Annotated[str, Field(min_length=1)] | None = None
    freshness: Freshness | None = None
    columns: list[ColumnSpec] = Field(min_length=1)


class ProductsFile(StrictModel):
    """A domain's `products.yml`: table name -> what it is and who writes it."""

    products: dict[Name, ProductSpec] = Field(default_factory=dict)


# ------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str = ""


@dataclass(frozen=True)
class Product:
    """A published table: its id, producing flow, owner, freshness and declared columns."""

    id: str
    domain: str
    project: str
    table: str
    flow: str
    """Repo-relative folder of the flow that writes it (`Flow.rel`)."""
    description: str
    owner: str
    freshness: timedelta | None
    columns: tuple[Column, ...]
    source: Path
    """The `products.yml` that declares it."""


@dataclass(frozen=True)
class Products:
    """The mesh's published products and who consumes them."""

    by_id: Mapping[str, Product]
    consumers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Product id -> repo-relative folders of the flows that declare `consumes:` of it."""
    consumes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Flow folder -> the product ids it declares it reads."""

    def of_flow(self, flow_rel: str) -> list[Product]:
        """The products flow `flow_rel` publishes, by id."""
        return sorted((p for p in self.by_id.values() if p.flow == flow_rel), key=lambda p: p.id)

    def consumed_by(self, flow_rel: str) -> list[Product]:
        """The products flow `flow_rel` declares it reads."""
        return [self.by_id[i] for i in self.consumes.get(flow_rel, ()) if i in self.by_id]

    def downstream(self, flow_rels: Iterable[str]) -> list[str]:
        """Flow folders consuming a product of `flow_rels` (transitively), not themselves in it."""
        given = set(flow_rels)
        found: set[str] = set()
        todo = list(given)
        while todo:
            rel = todo.pop()
            for product in self.of_flow(rel):
                for consumer in self.consumers.get(product.id, ()):
                    if consumer not in given and consumer not in found:
                        found.add(consumer)
                        todo.append(consumer)
        return sorted(found)


def _duration(text: str | None) -> timedelta | None:
    if text is None:
        return None
    found = _FRESHNESS.fullmatch(text)
    assert found is not None  # validated
    return timedelta(**{_UNITS[found[2]]: int(found[1])})


def _owners_group(domain_dir: Path, root: Path) -> str:
    """The domain's owners group (the default owner of its products); '' when unreadable:
    validating the domain reports that."""
    try:
        doc = yamldoc.load(domain_dir / DOMAIN_FILE, root)
    except InvalidFiles:
        return ""
    data = doc.data if isinstance(doc.data, dict) else {}
    owners = data.get("owners_group")
    return owners if isinstance(owners, str) else ""


def _domain_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob(f"orgs/*/domains/*/{PRODUCTS_FILE}"))


def published(mesh: Mesh) -> dict[str, Product]:
    """Every product the mesh's `products.yml` files declare, by id; InvalidFiles listing
    every problem (schema, unknown project or flow, duplicate columns) otherwise."""
    flows = {(f.domain, f.project, f.name): f for f in mesh.flows}
    out: dict[str, Product] = {}
    problems: list[Problem] = []
    for path in _domain_files(mesh.root):
        domain = path.parent.name
        try:
            doc = yamldoc.load(path, mesh.root)
            declared = yamldoc.validate(ProductsFile, doc)
        except InvalidFiles as exc:
            problems.extend(exc.problems)
            continue
        owners = _owners_group(path.parent, mesh.root)
        for table, spec in declared.products.items():
            where = ("products", table)
            flow = flows.get((domain, spec.project, spec.flow))
            if flow is None:
                known = sorted(f"{p}/{n}" for d, p, n in flows if d == domain)
                problems.append(
                    doc.problem(
                        (*where, "flow"),
                        f"no flow '{spec.flow}' in project '{spec.project}' of domain "
                        f"'{domain}'; expected one of: {', '.join(known) or 'none'}",
                    )
                )
                continue
            seen: dict[str, int] = {}
            for i, column in enumerate(spec.columns):
                if column.name.lower() in seen:
                    problems.append(
                        doc.problem(
                            (*where, "columns", i, "name"),
                            f"duplicate column '{column.name}' (also columns"
                            f"[{seen[column.name.lower()]}]); expected unique names",
                        )
                    )
                seen.setdefault(column.name.lower(), i)
            product_id = f"{domain}.{spec.project}.{table}"
            if product_id in out:  # the same domain name in two orgs
                problems.append(
                    doc.problem(
                        where,
                        f"product {product_id} is also declared in "
                        f"{out[product_id].source.relative_to(mesh.root).as_posix()}; "
                        "expected one product per id",
                    )
                )
                continue
            out[product_id] = Product(
                id=product_id,
                domain=domain,
                project=spec.project,
                table=table,
                flow=flow.rel,
                description=spec.description,
                owner=spec.owner or owners,
                freshness=_duration(spec.freshness),
                columns=tuple(Column(c.name, c.type, c.description) for c in spec.columns),
                source=path,
            )
    if problems:
        raise InvalidFiles(yamldoc.capped(problems))
    return out


def consumes_problems(
    file: str,
    lines: Sequence[int | None],
    consumes: Sequence[str],
    products: Mapping[str, Product],
) -> list[Problem]:
    """What is wrong with a flow's `consumes:` (in `file`, entry i on `lines[i]`) given the
    mesh's published products: each id must be published, and listed once."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, product_id in enumerate(consumes):
        key = f"consumes[{i}]"
        line = lines[i] if i < len(lines) else None
        if product_id in seen:
            message = f"{product_id} listed twice (also consumes[{seen[product_id]}])"
            problems.append(Problem(file, key, message, line))
            continue
        seen[product_id] = i
        if product_id in products:
            continue
        domain, project, _ = product_id.split(".", 2)
        same = sorted(p for p in products if p.startswith(f"{domain}.{project}."))
        hint = (
            f"published by {domain}.{project}: {', '.join(same)}"
            if same
            else f"domain '{domain}' publishes no product of project '{project}' "
            f"(add it to orgs/<org>/domains/{domain}/{PRODUCTS_FILE})"
        )
        message = f"{product_id} is not a published product; {hint}"
        problems.append(Problem(file, key, message, line))
    return problems


def _declared_consumes(flow: Flow, root: Path) -> tuple[yamldoc.YamlDoc, list[str]] | None:
    """The raw `consumes:` list of a flow's deployment.yml; None when it cannot be read or has
    none (validating the flow reports a bad file)."""
    try:
        doc = yamldoc.load(flow.folder(root) / DEPLOYMENT_FILE, root)
    except InvalidFiles:
        return None
    data = doc.data if isinstance(doc.data, dict) else {}
    found = data.get("consumes")
    if not isinstance(found, list) or not all(isinstance(i, str) for i in found):
        return None
    if not all(PRODUCT_ID.fullmatch(i) for i in found):
        return None
    return doc, list(found)


def load(
    mesh: Mesh,
    flows: Sequence[Flow] | None = None,
    known: Mapping[str, Product] | None = None,
) -> Products:
    """The mesh's products and the `consumes:` of `flows` (default: every flow), validated:
    a bad `products.yml` or a consumed id that is not published is an InvalidFiles.
    `known`: the mesh's `published` products when the caller read them already."""
    by_id = dict(published(mesh) if known is None else known)
    consumers: dict[str, list[str]] = {}
    consumes: dict[str, tuple[str, ...]] = {}
    problems: list[Problem] = []
    for flow in mesh.flows if flows is None else flows:
        found = _declared_consumes(flow, mesh.root)
        if found is None:
            continue
        doc, ids = found
        lines = [doc.line(("consumes", i)) for i in range(len(ids))]
        problems.extend(consumes_problems(doc.shown, lines, ids, by_id))
        consumes[flow.rel] = tuple(dict.fromkeys(ids))
        for product_id in consumes[flow.rel]:
            consumers.setdefault(product_id, []).append(flow.rel)
    if problems:
        raise InvalidFiles(yamldoc.capped(problems))
    return Products(
        by_id=by_id,
        consumers={k: tuple(sorted(v)) for k, v in consumers.items()},
        consumes=consumes,
    )


# ------------------------------------------------------------------------------- reads

SAME_DEPLOYMENT = "same deployment"
PROD = "prod"
LOCAL_BUILD = "local build"


@dataclass(frozen=True)
class Resolution:
    """Where a read of a product resolves for one run: the table and why that one."""

    product: str
    table: str
    source: str
    """`same deployment`, `prod`, `local build <run id>`, or `job parameter` (a job run
    reading what its plan decided)."""

    @property
    def foreign(self) -> bool:
        """The table belongs to another deployment: the run only reads it, never writes it."""
        return self.source != SAME_DEPLOYMENT

    def __str__(self) -> str:
        return f"{self.product} -> {self.table} ({self.source})"


# ------------------------------------------------------------------------------- contracts


@dataclass(frozen=True)
class Breach:
    """One breaking difference between a product's declared columns and a written table."""

    product: str
    column: str
    what: str
    """`dropped` or `type <declared> -> <written>`."""

    def __str__(self) -> str:
        return f"{self.column}: {self.what}"


def written_columns(schema: Any) -> dict[str, str]:
    """Column name (lowercase) -> simpleString type of a Spark `StructType`."""
    return {f.name.lower(): f.dataType.simpleString() for f in schema.fields}


def check(product: Product, schema: Any) -> list[Breach]:
    """The breaking changes of a written table (a Spark `StructType`, or a mapping of column
    name to type string) against `product`'s declared columns: a dropped column or a changed
    type. Added columns are not breaking."""
    written = (
        {k.lower(): v for k, v in schema.items()}
        if isinstance(schema, Mapping)
        else written_columns(schema)
    )
    breaches: list[Breach] = []
    for column in product.columns:
        found = written.get(column.name.lower())
        if found is None:
            breaches.append(Breach(product.id, column.name, "dropped"))
        elif found.replace(" ", "") != column.type.replace(" ", ""):
            breaches.append(Breach(product.id, column.name, f"type {column.type} -> {found}"))
    return breaches


def breach_message(products: Products, product: Product, breaches: Sequence[Breach]) -> str:
    """One line naming the product, each broken column and the consumer flows affected."""
    consumers = products.consumers.get(product.id, ())
    who = ", ".join(consumers) if consumers else "none declared"
    shown = "; ".join(str(b) for b in breaches)
    return (
        f"data contract of {product.id} broken ({shown}); consumers affected: {who}. "
        f"Restore the column(s), or change {product.source.name} with the consumers' owners"
    )


OK = "ok"
BREAKING = "breaking"
NOT_BUILT = "not built"


@dataclass(frozen=True)
class Status:
    """A product's contract status against its newest build: ok, breaking or not built."""

    product: str
    state: str
    """`ok`, `breaking` or `not built`."""
    table: str = ""
    breaches: tuple[Breach, ...] = ()
    consumers: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "status": self.state,
            "table": self.table,
            "breaking": [{"column": b.column, "what": b.what} for b in self.breaches],
            "consumers": list(self.consumers),
        }


def with_downstream(mesh: Mesh, flows: Sequence[Flow]) -> list[Flow]:
    """`flows` and, after them, every flow consuming a product one of them publishes
    (transitively): what `--downstream` adds to a set of changed flows."""
    found = load(mesh).downstream(f.rel for f in flows)
    extra = [f for f in mesh.flows if f.rel in found]
    return list(dict.fromkeys([*flows, *extra]))
