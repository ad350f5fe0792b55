"""What the local metastore holds: tables with their row counts and, on request, a sample
of rows (what `meshops tables` and the demo show)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshops.context import Context
from meshops.discover import Mesh
from meshops.engine import flowrun, session
from meshops.identity import Identity


@dataclass(frozen=True)
class LocalTable:
    name: str
    rows: int
    columns: tuple[str, ...] = ()
    sample: list[tuple[Any, ...]] = field(default_factory=list)
    """The first rows, as tuples of column values (empty unless asked for)."""

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"table": self.name, "rows": self.rows}
        if self.sample:
            shown["sample"] = [dict(zip(self.columns, row, strict=True)) for row in self.sample]
        return shown


def local_tables(
    ctx: Context, ident: Identity, mesh: Mesh, *, every_deployment: bool, sample: int = 0
) -> list[LocalTable]:
    """Tables of `ident`'s schemas and of the shared input catalogs (every schema's with
    `every_deployment`), each with its row count and its first `sample` rows."""
    spark = flowrun.spark_for(ctx, mesh)
    prefix = ident.id + "_"
    shared = flowrun.external_catalogs(ctx)
    found = []
    for catalog in sorted(session.known_catalogs(spark)):
        for (schema,) in spark.sql(f"SHOW SCHEMAS IN {catalog}").collect():
            if not (every_deployment or schema.startswith(prefix) or catalog in shared):
                continue
            for row in spark.sql(f"SHOW TABLES IN {catalog}.{schema}").collect():
                name = f"{catalog}.{schema}.{row.tableName}"
                frame = spark.table(name)
                rows = [tuple(r) for r in frame.limit(sample).collect()] if sample else []
                found.append(LocalTable(name, frame.count(), tuple(frame.columns), rows))
    return found
