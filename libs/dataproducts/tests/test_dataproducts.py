"""The notebook side of data products: the table a job's products parameter names."""

from __future__ import annotations

import json

import pytest

from dataproducts import PARAMETER, UnresolvedProduct, resolved, table

PROD = "acme_transport_taxinyc.revenue.revenue"
RESOLVED = {PARAMETER: json.dumps({"transport.taxinyc.revenue": PROD})}


class AllWidgets:
    """A runtime's widgets with `getAll` (Databricks Runtime 13 and later, meshops locally)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def getAll(self) -> dict[str, str]:
        return dict(self.values)


class OneWidget:
    """An older runtime's widgets: `get` only, an error for a widget the job does not have."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str) -> str:
        if name not in self.values:
            raise ValueError(f"No input widget named {name} is defined")
        return self.values[name]


class DbUtils:
    def __init__(self, widgets: object) -> None:
        self.widgets = widgets


@pytest.mark.parametrize("widgets", [AllWidgets, OneWidget])
def test_a_declared_product_reads_the_planned_table(widgets: type) -> None:
    dbutils = DbUtils(widgets(RESOLVED))
    assert table("transport.taxinyc.revenue", dbutils) == PROD


@pytest.mark.parametrize("widgets", [AllWidgets, OneWidget])
def test_an_undeclared_product_says_to_declare_it(widgets: type) -> None:
    with pytest.raises(UnresolvedProduct, match=r"resolved: none\): list it under consumes:"):
        table("transport.taxinyc.revenue", DbUtils(widgets({})))


def test_the_notebooks_dbutils_is_found_on_the_calling_frames() -> None:
    namespace = {"dbutils": DbUtils(AllWidgets(RESOLVED)), "table": table}
    exec("found = table('transport.taxinyc.revenue')", namespace)  # as a notebook cell runs
    assert namespace["found"] == PROD


def test_a_damaged_parameter_is_an_error_not_a_wrong_table() -> None:
    assert resolved({}) is None
    for bad in ("[1]", "{", json.dumps({"a.b.c": 1})):
        with pytest.raises(UnresolvedProduct, match="not a JSON object"):
            resolved({PARAMETER: bad})
