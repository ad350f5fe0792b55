"""Data products in a local run: where its reads resolve before it starts, and the data
contracts of the products it wrote after it ends.

Locally a consumer reads, in this order: the table of its own deployment (the producer ran
on this branch and commit), else the producer's prod table if this machine has one (the
local target's prod deployment ran it), else the newest successful local build of the
producer (its run records under the state folder), else the run stops before it starts with
one line naming the flow to run first. A run of a deployed job reads what its plan decided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from meshops import resolution
from meshops.engine.runs import RunRecord, RunStore
from meshops.errors import MeshopsError
from meshops.identity import Identity
from meshops.products import (
    BREAKING,
    LOCAL_BUILD,
    NOT_BUILT,
    OK,
    PROD,
    SAME_DEPLOYMENT,
    Product,
    Products,
    Resolution,
    Status,
    breach_message,
    check,
)
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RECORDS_SEARCHED = 200
"""Run records of the producer looked at for its newest successful build."""


def _exists(spark: SparkSession, name: str) -> bool:
    try:
        return bool(spark.catalog.tableExists(name))
    except Exception:  # a catalog or schema that does not exist: no table
        return False


def newest_build(
    spark: SparkSession, state: StatePaths, product: Product
) -> tuple[str, RunRecord] | None:
    """The product's table the newest successful local run of its producer wrote (and that
    still exists), with that run; None: no such run."""
    suffix = f".{product.table}".lower()
    for record in RunStore(state.runs_db).list(limit=RECORDS_SEARCHED, flow=product.flow):
        if record.status != "SUCCESS":
            continue
        for task in record.tasks:
            for name in task.tables:
                if name.lower().endswith(suffix) and _exists(spark, name):
                    return name, record
    return None


def local(
    ident: Identity,
    spark: SparkSession,
    state: StatePaths,
    products: Mapping[str, Product],
    consumes: Sequence[str],
) -> list[Resolution]:
    """Each consumed product's table for a local run of deployment `ident` (see the module)."""
    out = []
    for product_id in consumes:
        product = products.get(product_id)
        if product is None:
            raise MeshopsError(f"{product_id} is not published: `meshops validate` says why")
        same = resolution.own_table(ident, product)
        prod = resolution.prod_table(ident, product)
        if _exists(spark, same):
            out.append(Resolution(product_id, same, SAME_DEPLOYMENT))
        elif prod != same and _exists(spark, prod):
            out.append(Resolution(product_id, prod, PROD))
        else:
            built = newest_build(spark, state, product)
            if built is None:
                raise MeshopsError(
                    f"{product_id} has no table to read here: run `meshops run {product.flow}` "
                    "first"
                )
            out.append(Resolution(product_id, built[0], f"{LOCAL_BUILD} {built[1].run_id}"))
    return out


def contract_failures(
    ident: Identity,
    spark: SparkSession,
    products: Products,
    flow: str,
    written: Mapping[str, str],
) -> dict[str, str]:
    """Task key -> the failure of each product flow `flow` published in this run (`written`:
    table -> the task that wrote it) whose schema breaks its declared columns."""
    failures: dict[str, str] = {}
    lowered = {name.lower(): task for name, task in written.items()}
    for product in products.of_flow(flow):
        name = resolution.own_table(ident, product)
        task = lowered.get(name.lower())
        if task is None:
            continue
        breaches = check(product, spark.table(name).schema)
        if breaches:
            message = breach_message(products, product, breaches)
            failures[task] = f"{failures[task]}; {message}" if task in failures else message
    return failures


def built_table(
    ident: Identity, spark: SparkSession, state: StatePaths, product: Product
) -> str | None:
    """The product's newest table on this machine: this deployment's, else the newest
    successful local build's, else prod's; None: never built here."""
    same = resolution.own_table(ident, product)
    if _exists(spark, same):
        return same
    built = newest_build(spark, state, product)
    if built is not None:
        return built[0]
    prod = resolution.prod_table(ident, product)
    return prod if _exists(spark, prod) else None


def statuses(
    ident: Identity, spark: SparkSession, state: StatePaths, products: Products
) -> list[Status]:
    """Every product's contract status against its newest table here (`built_table`)."""
    out = []
    for product_id, product in sorted(products.by_id.items()):
        consumers = products.consumers.get(product_id, ())
        name = built_table(ident, spark, state, product)
        if name is None:
            out.append(Status(product_id, NOT_BUILT, consumers=consumers))
            continue
        breaches = tuple(check(product, spark.table(name).schema))
        state_of = BREAKING if breaches else OK
        out.append(Status(product_id, state_of, name, breaches, consumers))
    return out
