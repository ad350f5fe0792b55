"""Where a deployment's reads of data products resolve, decided when its plan is made.

A consumer never has to rebuild its producers: in prod a read is the producer's prod table;
in dev (and staging) the producer's table of the same deployment when the producing flow is
deployed with the consumer (changed on the branch), else the producer's prod table, which
the run only reads. The answer goes into the job's parameters (`identity.products_parameter`)
so a run of the job, in a workspace or on the local target, reads exactly what the plan said.
A local run decides with what exists on this machine (`engine.resolve`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from meshops import identity
from meshops.errors import MeshopsError
from meshops.identity import Identity
from meshops.products import PROD, SAME_DEPLOYMENT, Product, Resolution

JOB_PARAMETER = "job parameter"


def own_table(ident: Identity, product: Product) -> str:
    """The product's table in deployment `ident` (the producer's schema there)."""
    return ident.names_for(product.flow).table(product.table)


def prod_table(ident: Identity, product: Product) -> str:
    """The product's table in prod, whatever deployment `ident` is."""
    prod = ident if ident.env == identity.PROD else ident.with_env(identity.PROD)
    return own_table(prod, product)


def _consumed(products: Mapping[str, Product], consumes: Sequence[str]) -> list[Product]:
    missing = [i for i in consumes if i not in products]
    if missing:
        raise MeshopsError(
            f"product(s) {', '.join(missing)} are not published: `meshops validate` says why"
        )
    return [products[i] for i in consumes]


def for_deployment(
    ident: Identity,
    products: Mapping[str, Product],
    consumes: Sequence[str],
    deployed: Collection[str],
) -> list[Resolution]:
    """Each consumed product's table for deployment `ident`, whose flows are `deployed`
    (repo-relative folders): prod and staging read their own deployment's tables (every flow
    is in them); dev reads the same deployment's table when the producer is deployed with it,
    else the producer's prod table."""
    out = []
    for product in _consumed(products, consumes):
        same = ident.env in (identity.PROD, identity.STAGING) or product.flow in deployed
        if same:
            out.append(Resolution(product.id, own_table(ident, product), SAME_DEPLOYMENT))
        else:
            out.append(Resolution(product.id, prod_table(ident, product), PROD))
    return out


def from_parameters(
    ident: Identity, products: Mapping[str, Product], parameters: Mapping[str, str]
) -> list[Resolution] | None:
    """What a job's parameters say its reads resolve to (None: they say nothing), each told
    apart as the same deployment's table, prod's, or another one's."""
    tables = identity.products_of(parameters)
    if tables is None:
        return None
    out = []
    for product_id, table in sorted(tables.items()):
        product = products.get(product_id)
        source = JOB_PARAMETER
        if product is not None and table == own_table(ident, product):
            source = SAME_DEPLOYMENT
        elif product is not None and table == prod_table(ident, product):
            source = PROD
        out.append(Resolution(product_id, table, source))
    return out


def tables(resolutions: Iterable[Resolution]) -> dict[str, str]:
    """Product id -> table, as the job parameter carries it."""
    return {r.product: r.table for r in resolutions}


def parameters(resolutions: Iterable[Resolution]) -> dict[str, str]:
    """The job parameter of these resolutions (none when there are none)."""
    return identity.products_parameter(tables(resolutions))


def foreign_writes(written: Iterable[str], resolutions: Iterable[Resolution]) -> list[str]:
    """Tables a run wrote that it resolved as another deployment's reads (never allowed)."""
    foreign = {r.table.lower() for r in resolutions if r.foreign}
    return sorted(t for t in written if t.lower() in foreign)
