"""Our `GraphElementRegistry`: where the real `pyspark.pipelines` decorators land locally.

Open-source Spark Declarative Pipelines (pyspark 4.1+) defines the decorators and the
dataclasses they build (`Output`, `Flow`, `AutoCdcFlow`), and sends them to the registry made
active by `graph_element_registration_context`; its only registry talks to a Spark Connect
server. This one builds a `graph.Graph` for the classic local session instead, and adds what
Databricks has and OSS has not: expectations, once flows, private tables, SCD type 2.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.pipelines.flow import AutoCdcFlow, Flow
from pyspark.pipelines.graph_element_registry import (
    GraphElementRegistry,
    get_active_graph_element_registry,
)
from pyspark.pipelines.output import MaterializedView, Output, Sink, StreamingTable, TemporaryView

from meshops.pipelines.errors import PipelineSourceError
from meshops.pipelines.graph import CdcArgs, Dataset, Expectation, FlowDef, Graph

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EXPECTATIONS_ATTR = "__meshops_expectations__"
"""Expectations a decorator below `@table` put on the query function, read when it registers."""

_PYSPARK_PIPELINES = str(Path(sys.modules["pyspark.pipelines"].__file__ or "").parent)
_OURS = str(Path(__file__).parent)


def user_location() -> str:
    """`file:line` of the innermost frame that is not pyspark's or this package's: the line of
    the pipeline source that declared what is being registered."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith((_PYSPARK_PIPELINES, _OURS)):
            return f"{frame.filename}:{frame.lineno}"
    return "<pipeline source>"


class LocalRegistry(GraphElementRegistry):
    """Collects one pipeline's graph while its sources load."""

    def __init__(
        self, spark: SparkSession, configuration: Mapping[str, str], graph: Graph | None = None
    ) -> None:
        self.spark = spark
        self.configuration = dict(configuration)
        self.graph = graph or Graph()
        self._last_output: tuple[Output, Dataset] | None = None
        self._last_flow: FlowDef | None = None
        self._flows_by_query: dict[int, FlowDef] = {}

    # -- GraphElementRegistry

    def register_output(self, output: Output) -> None:
        where = user_location()
        if isinstance(output, Sink):
            raise PipelineSourceError(
                f"{where}: sink '{output.name}' (format {output.format}): sinks do not run "
                "locally; write to a streaming table and read it from the job instead"
            )
        if isinstance(output, MaterializedView):
            kind: Any = "materialized_view"
        elif isinstance(output, StreamingTable):
            kind = "streaming_table"
        elif isinstance(output, TemporaryView):
            kind = "view"
        else:
            raise PipelineSourceError(f"{where}: {type(output).__name__} is not a known dataset")
        dataset = Dataset(name=output.name, kind=kind, where=where, comment=output.comment)
        if isinstance(output, MaterializedView | StreamingTable):
            if output.format not in (None, "delta"):
                raise PipelineSourceError(
                    f"{where}: dataset '{output.name}': format={output.format!r}; pipeline "
                    "tables are Delta tables, locally as on Databricks: remove format"
                )
            dataset.table_properties = {str(k): str(v) for k, v in output.table_properties.items()}
            dataset.partition_cols = tuple(output.partition_cols or ())
            dataset.cluster_by = tuple(output.cluster_by or ())
            dataset.schema = output.schema
            if dataset.partition_cols and dataset.cluster_by:
                raise PipelineSourceError(
                    f"{where}: dataset '{output.name}' has both partition_cols and cluster_by; "
                    "Delta takes one of them"
                )
        self.graph.add_dataset(dataset)
        self._last_output = (output, dataset)

    def register_flow(self, flow: Flow) -> None:
        where = user_location()
        last = self._last_output
        if (
            last is not None
            and last[1].kind == "streaming_table"
            and flow.name == flow.target == last[0].name
            and flow.source_code_location is last[0].source_code_location
        ):
            # `@table` registers a streaming table and its flow from one call; what the
            # query returns decides what it is, as on Databricks (`create_streaming_table`
            # registers no flow of its own)
            last[1].kind = "table"
        defined = FlowDef(
            name=flow.name,
            target=flow.target,
            where=where,
            query=flow.func,
            spark_conf={str(k): str(v) for k, v in (flow.spark_conf or {}).items()},
        )
        self.add_flow(defined)
        self.expect(defined, list(getattr(flow.func, EXPECTATIONS_ATTR, [])))

    def register_auto_cdc_flow(self, flow: AutoCdcFlow) -> None:
        """OSS's `create_auto_cdc_flow` (called from `pyspark.pipelines.api` directly; the module
        attribute is ours while sources load): its Connect columns become SQL text."""
        where = user_location()
        self.add_flow(
            FlowDef(
                name=flow.name or flow.target,
                target=flow.target,
                where=where,
                query=None,
                cdc=CdcArgs(
                    source=flow.source,
                    keys=tuple(column_sql(c, where) for c in flow.keys),
                    sequence_by=column_sql(flow.sequence_by, where),
                    apply_as_deletes=(
                        None
                        if flow.apply_as_deletes is None
                        else column_sql(flow.apply_as_deletes, where)
                    ),
                    column_list=_names(flow.column_list, where),
                    except_column_list=_names(flow.except_column_list, where),
                    stored_as_scd_type=int(flow.stored_as_scd_type or 1),
                ),
            )
        )

    def register_sql(self, sql_text: str, file_path: Path) -> None:
        from meshops.pipelines import sqlsource

        sqlsource.register(self, sql_text, file_path)

    # -- what meshops adds

    def add_flow(self, flow: FlowDef) -> None:
        self.graph.add_flow(flow)
        self._last_flow = flow
        if flow.query is not None:
            self._flows_by_query[id(flow.query)] = flow

    def flow_of(self, query: Callable[..., Any]) -> FlowDef | None:
        """The flow registered with this query function, if any."""
        return self._flows_by_query.get(id(query))

    def last_flow(self, what: str) -> FlowDef:
        if self._last_flow is None:
            raise PipelineSourceError(
                f"{user_location()}: {what} needs a dataset: put it right below @table / @view "
                "(on the query function)"
            )
        return self._last_flow

    def expect(self, flow: FlowDef, expectations: list[Expectation]) -> None:
        """Attach expectations: a dataset's own flow carries them for the dataset (they then
        apply to every flow into it), an append flow for itself."""
        if not expectations:
            return
        for expectation in expectations:
            check_condition(self.spark, expectation)
        dataset = self.graph.dataset(flow.target)
        if dataset is not None and flow.name.lower() == dataset.key:
            dataset.expectations.extend(expectations)
        else:
            flow.expectations.extend(expectations)

    def dataset_named(self, name: str) -> Dataset:
        dataset = self.graph.dataset(name)
        if dataset is None:  # pragma: no cover - registered just before by the same call
            raise PipelineSourceError(f"{user_location()}: no dataset '{name}' was registered")
        return dataset


def active() -> LocalRegistry:
    """The registry of the pipeline whose sources are loading in this thread."""
    registry = get_active_graph_element_registry()
    if not isinstance(registry, LocalRegistry):  # pragma: no cover - someone else's registry
        raise PipelineSourceError(
            f"{user_location()}: this pipeline runs on Spark Connect, where meshops' pipeline "
            "extensions (expectations, dlt) are not available"
        )
    return registry


def check_condition(spark: SparkSession, expectation: Expectation) -> None:
    """The condition parses as a Spark SQL expression, or the source is wrong."""
    parser: Any = spark._jsparkSession.sessionState().sqlParser()
    try:
        parser.parseExpression(expectation.condition)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PipelineSourceError(
            f"{expectation.where}: expectation '{expectation.name}': "
            f"{expectation.condition!r} is not a SQL boolean expression ({reason})"
        ) from None


def column_sql(column: Any, where: str) -> str:
    """A column given as a string, a classic Column or a Spark Connect Column, as SQL text."""
    if isinstance(column, str):
        return column
    jc = getattr(column, "_jc", None)
    if jc is not None:
        return str(jc.toString())
    expr = getattr(column, "_expr", None)
    for attr in ("_unparsed_identifier", "_expr"):
        text = getattr(expr, attr, None)
        if isinstance(text, str):
            return text
    raise PipelineSourceError(
        f"{where}: {column!r} cannot be used here locally; pass the column name or a SQL "
        "expression as a string"
    )


def _names(columns: list[Any] | None, where: str) -> tuple[str, ...] | None:
    if columns is None:
        return None
    return tuple(column_sql(c, where).strip("`") for c in columns)
