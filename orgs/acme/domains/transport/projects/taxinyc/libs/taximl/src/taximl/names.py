"""The flow's catalog, schema, tables and registered model name, all from brickops.

Inside a notebook brickops reads the context (notebook path, user, widgets) from
`dbutils`; tests pass a hand-built `DbContext`. The model is `<catalog>.<schema>.<leaf>`:
the flow's catalog and schema, and the `model` naming template for the leaf, which is
exactly what `meshops.naming.model` computes for the same notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from brickops.databricks.context import DbContext, current_env, get_context
from brickops.datamesh.naming import catname_from_path, dbname, name_from_path, tablename


@dataclass(frozen=True)
class FlowNames:
    """Names of one flow in one deployment (env, user, branch, commit)."""

    env: str
    catalog: str
    schema: str
    model: str
    db_context: DbContext = field(repr=False, compare=False)

    def table(self, name: str) -> str:
        """`catalog.schema.name` in the flow's schema."""
        return str(
            tablename(
                tbl=name, db=self.schema, cat=self.catalog, env=self.env, db_context=self.db_context
            )
        )


def flow_names(flow: str, db_context: DbContext | None = None) -> FlowNames:
    """Names of `flow` (its folder name is its schema's `db`), as brickops gives them."""
    ctx = db_context if db_context is not None else get_context()
    env = current_env(ctx)
    catalog = catname_from_path(db_context=ctx, env=env)
    schema = dbname(db=flow, cat=catalog, db_context=ctx, env=env)
    leaf = name_from_path(resource="model", db_context=ctx, env=env)
    return FlowNames(
        env=env, catalog=catalog, schema=schema, model=f"{schema}.{leaf}", db_context=ctx
    )
