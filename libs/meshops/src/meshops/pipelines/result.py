"""What an update did: rows per dataset and flow, expectation counts, for the run summary."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from meshops.pipelines.graph import Action


@dataclass(frozen=True)
class ExpectationResult:
    dataset: str
    flow: str
    name: str
    action: Action
    passed_records: int
    failed_records: int

    @property
    def dropped_records(self) -> int:
        return self.failed_records if self.action == "drop" else 0


@dataclass(frozen=True)
class FlowResult:
    name: str
    dataset: str
    mode: str
    """`complete` (recomputed), `append` (a stream), `cdc`, `once`, `view`, `skipped`."""
    num_output_rows: int | None
    """Rows written by this update (None for views, which store nothing)."""
    batches: int = 0


@dataclass(frozen=True)
class DatasetResult:
    name: str
    kind: str
    """`materialized_view`, `streaming_table` or `view`."""
    table: str | None
    """Its Delta table (`catalog.schema.name`); None for a view."""
    rows_written: int | None
    quarantine_table: str | None = None


@dataclass(frozen=True)
class UpdateResult:
    pipeline: str
    update_id: str
    full_refresh: bool
    datasets: tuple[DatasetResult, ...]
    flows: tuple[FlowResult, ...]
    expectations: tuple[ExpectationResult, ...]
    event_log_table: str

    def dataset(self, name: str) -> DatasetResult:
        for dataset in self.datasets:
            if dataset.name.lower() == name.lower():
                return dataset
        raise KeyError(f"no dataset {name!r} in pipeline {self.pipeline}")

    def rows(self, name: str) -> int:
        """Rows dataset `name` got in this update (0 for a view)."""
        return self.dataset(name).rows_written or 0

    def expectation(self, dataset: str, name: str) -> ExpectationResult:
        for found in self.expectations:
            if found.dataset.lower() == dataset.lower() and found.name.lower() == name.lower():
                return found
        raise KeyError(f"no expectation {name!r} on dataset {dataset!r}")

    def tables(self) -> list[Table]:
        """The summary: a table of datasets, and one of expectations when there are any."""
        datasets = Table(
            title=f"pipeline {escape(self.pipeline)} update {self.update_id[:8]}"
            + (" (full refresh)" if self.full_refresh else ""),
            title_justify="left",
        )
        for column in ("dataset", "kind", "rows written", "table"):
            datasets.add_column(column, overflow="fold")
        for dataset in self.datasets:
            datasets.add_row(
                escape(dataset.name),
                dataset.kind.replace("_", " "),
                "-" if dataset.rows_written is None else str(dataset.rows_written),
                escape(dataset.table or "(temporary view)"),
            )
        tables = [datasets]
        if self.expectations:
            checks = Table(title="expectations", title_justify="left")
            for column in ("dataset", "expectation", "on violation", "passed", "failed"):
                checks.add_column(column, overflow="fold")
            for found in self.expectations:
                checks.add_row(
                    escape(found.dataset),
                    escape(found.name),
                    {"warn": "keep (warn)", "drop": "drop row", "fail": "fail update"}[
                        found.action
                    ],
                    str(found.passed_records),
                    str(found.failed_records),
                )
            tables.append(checks)
        return tables

    def print(self, console: Console) -> None:
        for table in self.tables():
            console.print(table)
        console.print(f"event log: {escape(self.event_log_table)}")
