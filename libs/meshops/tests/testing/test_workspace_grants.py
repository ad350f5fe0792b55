"""The workspace double's Unity Catalog grants and owner updates, through the real SDK."""

from __future__ import annotations

import pytest
from databricks.sdk.errors import InvalidParameterValue, NotFound
from databricks.sdk.service.catalog import PermissionsChange, Privilege

from meshops.testing.workspace import WorkspaceDouble

pytestmark = pytest.mark.integration

P = Privilege


@pytest.fixture
def ws(workspace_double: WorkspaceDouble) -> WorkspaceDouble:
    workspace_double.add_schema("main", "sales")
    return workspace_double


def test_grants_add_and_remove_in_one_update_and_read_back(ws: WorkspaceDouble) -> None:
    w = ws.client()
    w.grants.update(
        "schema",
        "main.sales",
        changes=[
            PermissionsChange(principal="readers", add=[P.USE_SCHEMA, P.SELECT]),
            PermissionsChange(principal="writers", add=[P.MODIFY]),
        ],
    )
    answer = w.grants.update(
        "SCHEMA",  # the type is read in any case
        "main.sales",
        changes=[
            PermissionsChange(principal="writers", remove=[P.MODIFY]),
            PermissionsChange(principal="readers", remove=[P.CREATE_TABLE]),  # not held: no-op
        ],
    )
    assert [a.as_dict() for a in answer.privilege_assignments or []] == [
        {"principal": "readers", "privileges": ["SELECT", "USE_SCHEMA"]}
    ]
    got = w.grants.get("schema", "main.sales", principal="readers")
    assert [a.principal for a in got.privilege_assignments or []] == ["readers"]
    assert ws.grants("schema", "main.sales") == {"readers": {"SELECT", "USE_SCHEMA"}}


def test_a_privilege_the_type_does_not_take_refuses_the_whole_update(ws: WorkspaceDouble) -> None:
    w = ws.client()
    with pytest.raises(InvalidParameterValue, match="USE_CATALOG is not applicable"):
        w.grants.update(
            "schema",
            "main.sales",
            changes=[
                PermissionsChange(principal="a", add=[P.SELECT]),
                PermissionsChange(principal="b", add=[P.USE_CATALOG]),
            ],
        )
    assert ws.grants("schema", "main.sales") == {}
    with pytest.raises(InvalidParameterValue, match="not supported by the workspace double"):
        w.grants.get("table", "main.sales.t")
    with pytest.raises(InvalidParameterValue, match="max_results must be 0 or at least 150"):
        w.grants.get("schema", "main.sales", max_results=10)
    with pytest.raises(NotFound, match="Schema 'main.nope' does not exist"):
        w.grants.get("schema", "main.nope")


def test_grants_go_with_their_schema(ws: WorkspaceDouble) -> None:
    w = ws.client()
    w.grants.update(
        "schema", "main.sales", changes=[PermissionsChange(principal="a", add=[P.SELECT])]
    )
    w.schemas.delete("main.sales")
    ws.add_schema("main", "sales")
    assert ws.grants("schema", "main.sales") == {}
    assert not w.grants.get("schema", "main.sales").privilege_assignments


def test_owner_and_properties_of_catalogs_and_schemas(ws: WorkspaceDouble) -> None:
    w = ws.client()
    assert w.catalogs.update("main", owner="data-owners").owner == "data-owners"
    updated = w.schemas.update("main.sales", owner="sales-owners", properties={"k": "v"})
    assert (updated.owner, updated.properties) == ("sales-owners", {"k": "v"})
    assert w.schemas.get("main.sales").owner == "sales-owners"
    with pytest.raises(InvalidParameterValue, match="Updating new_name is not supported"):
        w.schemas.update("main.sales", new_name="renamed")
    with pytest.raises(NotFound):
        w.catalogs.update("nope", owner="x")
