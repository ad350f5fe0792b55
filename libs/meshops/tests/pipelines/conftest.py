"""Pipelines run on the test process's one local Spark session (the `spark` fixture of the
meshops pytest plugin): each test gets its own schema in catalog `acme_pipes`, a folder for its
sources and a state folder for checkpoints."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from meshops.engine import session
from meshops.pipelines import LocalPipeline
from meshops.pipelines.update import run_update

CATALOG = "acme_pipes"


@dataclass
class PipelineBed:
    """A pipeline under test: write its sources, run updates, read its tables."""

    spark: SparkSession
    schema: str
    folder: Path
    state: Path
    configuration: dict[str, str]

    def source(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    def pipeline(self, *sources: Path, **configuration: str) -> LocalPipeline:
        return LocalPipeline(
            name=f"pipe_{self.schema}",
            catalog=CATALOG,
            schema=self.schema,
            sources=sources,
            configuration={**self.configuration, **configuration},
            state_dir=self.state,
        )

    def run(self, *sources: Path, full_refresh: bool = False, **configuration: str) -> Any:
        return run_update(
            self.spark, self.pipeline(*sources, **configuration), full_refresh=full_refresh
        )

    def table(self, name: str) -> str:
        return f"{CATALOG}.{self.schema}.{name}"

    def rows(self, name: str, *columns: str) -> list[tuple[Any, ...]]:
        """The table's rows as sorted tuples of `columns` (all columns if none given)."""
        frame = self.spark.table(self.table(name))
        picked = frame.select(*columns) if columns else frame
        return sorted(
            (tuple(row) for row in picked.collect()),
            key=lambda row: [(v is None, "" if v is None else v) for v in row],
        )

    def write(
        self, name: str, rows: list[tuple[Any, ...]], schema: str, mode: str = "append"
    ) -> None:
        """Append one commit (one file) to an input Delta table of the test's schema."""
        frame = self.spark.createDataFrame(rows, schema).coalesce(1)
        frame.write.format("delta").mode(mode).saveAsTable(self.table(name))

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The event log as dicts (details parsed), oldest first."""
        from meshops.pipelines.eventlog import table_name

        log = self.spark.table(table_name(CATALOG, self.schema, f"pipe_{self.schema}"))
        rows = [r.asDict(recursive=True) for r in log.orderBy("sequence").collect()]
        for row in rows:
            row["details"] = json.loads(row["details"])
        return [r for r in rows if event_type is None or r["event_type"] == event_type]


@pytest.fixture
def bed(
    spark: SparkSession, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[PipelineBed]:
    session.register_catalogs(spark, [CATALOG])
    schema = "p_" + "".join(c for c in request.node.name.lower() if c.isalnum() or c == "_")[:40]
    spark.sql(f"DROP SCHEMA IF EXISTS {CATALOG}.{schema} CASCADE")
    spark.sql(f"CREATE SCHEMA {CATALOG}.{schema}")
    folder = tmp_path / "flow"
    folder.mkdir()
    yield PipelineBed(spark, schema, folder, tmp_path / "state", {})
    spark.sql(f"DROP SCHEMA IF EXISTS {CATALOG}.{schema} CASCADE")
