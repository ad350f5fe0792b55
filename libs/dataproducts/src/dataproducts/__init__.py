"""Read another domain's data products from a notebook, as the run's plan resolved them.

meshops decides where each product a flow consumes is read from when it plans the flow's
job or starts a local run, and hands the answer to the notebook as one job parameter (a
widget): a JSON object of product id -> table. This package only reads it, so it has no
dependencies and installs on any Databricks runtime.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

PARAMETER = "meshops_products"
"""The job parameter (widget) meshops sets on a consuming flow's job; `meshops.identity`
spells the same key (a test keeps the two equal)."""

__all__ = ["PARAMETER", "UnresolvedProduct", "resolved", "table"]


class UnresolvedProduct(LookupError):
    """The run did not resolve this product: the flow does not declare it, or the job's
    parameter is missing or damaged."""


def resolved(parameters: Mapping[str, str]) -> dict[str, str] | None:
    """Product id -> table from a job's parameters (or a notebook's widgets); None when they
    carry no products parameter. A value that is not such a JSON object is an error."""
    text = parameters.get(PARAMETER)
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise UnresolvedProduct(
            f"job parameter {PARAMETER} is not a JSON object of product id -> table: "
            "deploy the flow again"
        )
    return found


def table(product_id: str, dbutils: Any = None) -> str:
    """The table to read product `product_id` (`<domain>.<project>.<table>`) from in this run.

    `dbutils` defaults to the notebook's (found on the calling frames, as a notebook's
    globals hold it). A product the flow does not list under `consumes:` was not resolved:
    UnresolvedProduct says to declare it.
    """
    found = resolved(_widgets(dbutils if dbutils is not None else _notebook_dbutils())) or {}
    if product_id not in found:
        known = ", ".join(sorted(found)) or "none"
        raise UnresolvedProduct(
            f"{product_id} was not resolved for this run (resolved: {known}): list it under "
            "consumes: in the flow's deployment.yml and run or deploy again"
        )
    return found[product_id]


def _widgets(dbutils: Any) -> dict[str, str]:
    """The notebook's widgets; `getAll` where the runtime has it, else the one we need."""
    widgets = dbutils.widgets
    if hasattr(widgets, "getAll"):
        return dict(widgets.getAll())
    try:
        return {PARAMETER: widgets.get(PARAMETER)}
    except Exception:  # no such widget: the job has no products parameter
        return {}


def _notebook_dbutils() -> Any:
    for frame in inspect.stack():
        if "dbutils" in frame.frame.f_globals:
            return frame.frame.f_globals["dbutils"]
    raise UnresolvedProduct("dbutils not found: call table() from a notebook, or pass dbutils")
