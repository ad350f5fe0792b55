"""The dataflow graph of a pipeline: datasets, the flows that fill them, their expectations.

Sources declare it (Python decorators through `registry`, SQL through `sqlsource`); the
update (`update`) runs it. Names are kept as declared and compared case-insensitively, as
Spark compares identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from meshops.pipelines.errors import PipelineSourceError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

Action = Literal["warn", "drop", "fail"]
"""What a failing row does: kept and counted (`expect`), dropped (`_or_drop`), stops the update
(`_or_fail`)."""

DatasetKind = Literal["table", "materialized_view", "streaming_table", "view"]
"""`table` is Python's `@table`: a streaming table when its query streams, else a materialized
view (Databricks' rule); `streaming_table` takes only streaming (or once / AUTO CDC) flows."""

QueryFunction = Callable[[], "DataFrame"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def full_name(catalog: str, schema: str, name: str) -> str:
    """`catalog.schema.table` of a dataset named `name`, `schema.name` or `c.s.name`
    (lower case, as the catalog stores it)."""
    parts = name.split(".")
    if len(parts) == 1:
        parts = [catalog, schema, *parts]
    elif len(parts) == 2:
        parts = [catalog, *parts]
    return ".".join(parts).lower()


@dataclass(frozen=True)
class Expectation:
    name: str
    condition: str
    """A SQL boolean expression; a row passes when it is true (false or NULL fails it)."""
    action: Action
    where: str
    """`file:line` of the declaration, for error messages."""


@dataclass(frozen=True)
class CdcArgs:
    """The arguments of `create_auto_cdc_flow` / `apply_changes` / `AUTO CDC INTO` (Databricks'
    names), turned into a `cdc.CdcSpec` when the flow runs."""

    source: str
    keys: tuple[str, ...]
    sequence_by: Any
    """A SQL expression string or a Column."""
    where: Any = None
    ignore_null_updates: bool = False
    apply_as_deletes: Any = None
    apply_as_truncates: Any = None
    column_list: tuple[str, ...] | None = None
    except_column_list: tuple[str, ...] | None = None
    stored_as_scd_type: int = 1
    track_history_column_list: tuple[str, ...] | None = None
    track_history_except_column_list: tuple[str, ...] | None = None


@dataclass
class Dataset:
    name: str
    kind: DatasetKind
    where: str
    comment: str | None = None
    table_properties: dict[str, str] = field(default_factory=dict)
    partition_cols: tuple[str, ...] = ()
    cluster_by: tuple[str, ...] = ()
    schema: StructType | str | None = None
    expectations: list[Expectation] = field(default_factory=list)
    private: bool = False
    spark_conf: dict[str, str] = field(default_factory=dict)
    """Settings for every flow into the dataset (a flow's own `spark_conf` wins)."""

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass
class FlowDef:
    name: str
    target: str
    where: str
    query: QueryFunction | None
    """What the flow reads, as a DataFrame; None for an AUTO CDC flow (see `cdc`)."""
    spark_conf: dict[str, str] = field(default_factory=dict)
    once: bool = False
    """Runs once (a backfill), again only after a full refresh."""
    cdc: CdcArgs | None = None
    expectations: list[Expectation] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass
class Graph:
    """Datasets and flows in the order the sources declared them."""

    datasets: dict[str, Dataset] = field(default_factory=dict)
    flows: dict[str, FlowDef] = field(default_factory=dict)

    def add_dataset(self, dataset: Dataset) -> None:
        parts = dataset.name.split(".")
        if len(parts) > 3 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
            raise PipelineSourceError(
                f"{dataset.where}: dataset name {dataset.name!r}: expected a name of letters, "
                "digits and _ (optionally schema.name or catalog.schema.name)"
            )
        known = self.datasets.get(dataset.key)
        if known is not None:
            raise PipelineSourceError(
                f"{dataset.where}: dataset '{dataset.name}' is already defined at {known.where}; "
                "each dataset is defined once (add more flows with append_flow instead)"
            )
        self.datasets[dataset.key] = dataset

    def add_flow(self, flow: FlowDef) -> None:
        known = self.flows.get(flow.key)
        if known is not None:
            raise PipelineSourceError(
                f"{flow.where}: flow '{flow.name}' is already defined at {known.where}; "
                "flow names are unique in a pipeline: pass name=... to tell them apart"
            )
        self.flows[flow.key] = flow

    def dataset(self, name: str) -> Dataset | None:
        return self.datasets.get(name.lower())

    def flows_into(self, dataset: Dataset) -> list[FlowDef]:
        return [f for f in self.flows.values() if f.target.lower() == dataset.key]

    def tables(self) -> Iterator[Dataset]:
        """Datasets stored as Delta tables (every kind but views)."""
        return (d for d in self.datasets.values() if d.kind != "view")

    def validate(self) -> None:
        """Every flow has a target, every dataset a flow, one flow for views and materialized
        views, unique expectation names per dataset; the first problem raises."""
        for flow in self.flows.values():
            target = self.dataset(flow.target)
            if target is None:
                raise PipelineSourceError(
                    f"{flow.where}: flow '{flow.name}' writes to '{flow.target}', which no source "
                    "defines; declare it first (create_streaming_table / CREATE STREAMING TABLE)"
                )
            if flow.cdc is not None and target.kind != "streaming_table":
                raise PipelineSourceError(
                    f"{flow.where}: AUTO CDC flow '{flow.name}' needs a streaming table as target; "
                    f"'{target.name}' is a {target.kind.replace('_', ' ')}"
                )
        for dataset in self.datasets.values():
            flows = self.flows_into(dataset)
            if not flows:
                raise PipelineSourceError(
                    f"{dataset.where}: {dataset.kind.replace('_', ' ')} '{dataset.name}' has no "
                    "flow: give it a query, an append_flow or an AUTO CDC flow"
                )
            if dataset.kind in ("view", "materialized_view") and len(flows) > 1:
                raise PipelineSourceError(
                    f"{flows[1].where}: flow '{flows[1].name}' writes to "
                    f"{dataset.kind.replace('_', ' ')} '{dataset.name}', which takes only its own "
                    "query; append flows need a streaming table"
                )
            if any(f.cdc is not None for f in flows) and (
                dataset.expectations or any(f.expectations for f in flows)
            ):
                raise PipelineSourceError(
                    f"{dataset.where}: '{dataset.name}' is the target of an AUTO CDC flow, which "
                    "takes no expectations (as on Databricks): put them on the source instead"
                )
            for flow in flows:
                seen: dict[str, Expectation] = {}
                for expectation in [*dataset.expectations, *flow.expectations]:
                    other = seen.get(expectation.name.lower())
                    if other is not None and other != expectation:
                        raise PipelineSourceError(
                            f"{expectation.where}: expectation '{expectation.name}' is already "
                            f"defined for dataset '{dataset.name}' at {other.where}; expectation "
                            "names are unique per dataset"
                        )
                    seen[expectation.name.lower()] = expectation
