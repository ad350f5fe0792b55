"""The Python API of Databricks pipelines, on top of open-source `pyspark.pipelines`.

`dlt` (the `meshops.pipelines.dlt` module) is made of these functions, and while sources load
they are also attributes of `pyspark.pipelines`, so `from pyspark import pipelines as dp`
sources get Databricks' `dp` (see `loader.databricks_dp`). Dataset decorators call the real
OSS decorators, which register through our registry; this module adds what OSS lacks:

- `expect`, `expect_or_drop`, `expect_or_fail` and the `expect_all*` forms;
- Databricks' keyword arguments (`private`, `temporary`, `row_filter`, `once`, `comment` on
  flows, `expect_all*` on `create_streaming_table`);
- `create_auto_cdc_flow` / `apply_changes` with SCD type 2 and every Databricks option (OSS
  builds Spark Connect columns and takes SCD type 1 only);
- `read` / `read_stream` of another dataset of the pipeline.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.pipelines import api as oss

from meshops.pipelines import registry as registries
from meshops.pipelines.errors import PipelineSourceError
from meshops.pipelines.graph import Action, CdcArgs, Expectation, FlowDef, QueryFunction
from meshops.pipelines.registry import EXPECTATIONS_ATTR, column_sql, user_location

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

Decorator = Callable[[QueryFunction], None]


# ---- datasets ------------------------------------------------------------------------------


def table(
    query_function: QueryFunction | None = None,
    *,
    name: str | None = None,
    comment: str | None = None,
    spark_conf: dict[str, str] | None = None,
    table_properties: dict[str, str] | None = None,
    path: str | None = None,
    partition_cols: list[str] | None = None,
    cluster_by: list[str] | None = None,
    schema: StructType | str | None = None,
    row_filter: str | None = None,
    temporary: bool = False,
    private: bool = False,
    format: str | None = None,
) -> Decorator | None:
    """A table: a streaming table when the query streams, else a materialized view."""
    _local_only(path, row_filter, format)

    def outer(func: QueryFunction) -> None:
        oss.table(
            name=name,
            comment=comment,
            spark_conf=spark_conf,
            table_properties=table_properties,
            partition_cols=partition_cols,
            cluster_by=cluster_by,
            schema=schema,
        )(func)
        _mark_private(name or func.__name__, private or temporary)

    return _apply(outer, query_function)


create_table = table  # the oldest spelling, still in Databricks' dlt


def materialized_view(
    query_function: QueryFunction | None = None,
    *,
    name: str | None = None,
    comment: str | None = None,
    spark_conf: dict[str, str] | None = None,
    table_properties: dict[str, str] | None = None,
    path: str | None = None,
    partition_cols: list[str] | None = None,
    cluster_by: list[str] | None = None,
    schema: StructType | str | None = None,
    row_filter: str | None = None,
    private: bool = False,
    format: str | None = None,
) -> Decorator | None:
    """A materialized view: recomputed in full by each update."""
    _local_only(path, row_filter, format)

    def outer(func: QueryFunction) -> None:
        oss.materialized_view(
            name=name,
            comment=comment,
            spark_conf=spark_conf,
            table_properties=table_properties,
            partition_cols=partition_cols,
            cluster_by=cluster_by,
            schema=schema,
        )(func)
        _mark_private(name or func.__name__, private)

    return _apply(outer, query_function)


def view(
    query_function: QueryFunction | None = None,
    *,
    name: str | None = None,
    comment: str | None = None,
    spark_conf: dict[str, str] | None = None,
) -> Decorator | None:
    """A temporary view: visible to the pipeline's flows only, never stored."""

    def outer(func: QueryFunction) -> None:
        oss.temporary_view(name=name, comment=comment, spark_conf=spark_conf)(func)

    return _apply(outer, query_function)


temporary_view = view


def create_streaming_table(
    name: str,
    *,
    comment: str | None = None,
    spark_conf: dict[str, str] | None = None,
    table_properties: dict[str, str] | None = None,
    path: str | None = None,
    partition_cols: list[str] | None = None,
    cluster_by: list[str] | None = None,
    schema: StructType | str | None = None,
    expect_all: Mapping[str, str] | None = None,
    expect_all_or_drop: Mapping[str, str] | None = None,
    expect_all_or_fail: Mapping[str, str] | None = None,
    row_filter: str | None = None,
    private: bool = False,
    format: str | None = None,
) -> None:
    """A streaming table that append flows and AUTO CDC flows write to."""
    _local_only(path, row_filter, format)
    oss.create_streaming_table(
        name,
        comment=comment,
        table_properties=table_properties,
        partition_cols=partition_cols,
        cluster_by=cluster_by,
        schema=schema,
    )
    registry = registries.active()
    dataset = registry.dataset_named(name)
    dataset.private = private
    dataset.spark_conf = {str(k): str(v) for k, v in (spark_conf or {}).items()}
    where = user_location()
    for action, rules in (("warn", expect_all), ("drop", expect_all_or_drop)):
        dataset.expectations.extend(_expectations(rules, action, where))  # type: ignore[arg-type]
    dataset.expectations.extend(_expectations(expect_all_or_fail, "fail", where))
    for expectation in dataset.expectations:
        registries.check_condition(registry.spark, expectation)


create_streaming_live_table = create_streaming_table
create_target_table = create_streaming_table


def append_flow(
    *,
    target: str,
    name: str | None = None,
    spark_conf: dict[str, str] | None = None,
    comment: str | None = None,
    once: bool = False,
) -> Decorator:
    """A flow appending its query's rows to a streaming table; `once` for a one-time backfill."""

    def outer(func: QueryFunction) -> None:
        oss.append_flow(target=target, name=name, spark_conf=spark_conf)(func)
        flow = registries.active().flow_of(func)
        if flow is not None:
            flow.once = once

    return outer


def create_auto_cdc_flow(
    target: str,
    source: str,
    keys: Sequence[str | Column],
    sequence_by: str | Column,
    where: str | Column | None = None,
    ignore_null_updates: bool = False,
    apply_as_deletes: str | Column | None = None,
    apply_as_truncates: str | Column | None = None,
    column_list: Sequence[str | Column] | None = None,
    except_column_list: Sequence[str | Column] | None = None,
    stored_as_scd_type: int | str = 1,
    track_history_column_list: Sequence[str | Column] | None = None,
    track_history_except_column_list: Sequence[str | Column] | None = None,
    name: str | None = None,
    once: bool = False,
) -> None:
    """Apply a change feed to a streaming table (SCD type 1 or 2), as Databricks does."""
    at = user_location()
    if str(stored_as_scd_type) not in ("1", "2"):
        raise PipelineSourceError(
            f"{at}: stored_as_scd_type={stored_as_scd_type!r}: expected 1 or 2"
        )
    if column_list is not None and except_column_list is not None:
        raise PipelineSourceError(
            f"{at}: AUTO CDC into '{target}': give column_list or except_column_list, not both"
        )
    if not keys:
        raise PipelineSourceError(f"{at}: AUTO CDC into '{target}': keys must name a column")
    registries.active().add_flow(
        FlowDef(
            name=name or target,
            target=target,
            where=at,
            query=None,
            once=once,
            cdc=CdcArgs(
                source=source,
                keys=tuple(_column_names(keys, at)),
                sequence_by=sequence_by,
                where=where,
                ignore_null_updates=ignore_null_updates,
                apply_as_deletes=apply_as_deletes,
                apply_as_truncates=apply_as_truncates,
                column_list=_optional_names(column_list, at),
                except_column_list=_optional_names(except_column_list, at),
                stored_as_scd_type=int(stored_as_scd_type),
                track_history_column_list=_optional_names(track_history_column_list, at),
                track_history_except_column_list=_optional_names(
                    track_history_except_column_list, at
                ),
            ),
        )
    )


apply_changes = create_auto_cdc_flow


def create_auto_cdc_from_snapshot_flow(*args: Any, **kwargs: Any) -> None:
    raise PipelineSourceError(
        f"{user_location()}: AUTO CDC from snapshots (create_auto_cdc_from_snapshot_flow / "
        "apply_changes_from_snapshot) does not run locally; use create_auto_cdc_flow on a "
        "change feed"
    )


apply_changes_from_snapshot = create_auto_cdc_from_snapshot_flow


def create_sink(name: str, format: str, options: dict[str, str] | None = None) -> None:
    oss.create_sink(name, format, options)


# ---- reads ---------------------------------------------------------------------------------


def read(name: str) -> DataFrame:
    """The current contents of dataset `name` of this pipeline (built first if need be)."""
    from meshops.pipelines import reads

    return reads.require("dlt.read").read(name)


def read_stream(name: str) -> DataFrame:
    """Dataset `name` as a stream (built first if need be)."""
    from meshops.pipelines import reads

    return reads.require("dlt.read_stream").read_stream(name)


# ---- expectations --------------------------------------------------------------------------


def expect(description: str, constraint: str) -> Callable[[Any], Any]:
    """Count rows failing `constraint`; keep them."""
    return _expectation_decorator({description: constraint}, "warn")


def expect_or_drop(description: str, constraint: str) -> Callable[[Any], Any]:
    """Drop rows failing `constraint` (counted; quarantined when `meshops.quarantine` is on)."""
    return _expectation_decorator({description: constraint}, "drop")


def expect_or_fail(description: str, constraint: str) -> Callable[[Any], Any]:
    """Stop the update at the first row failing `constraint`."""
    return _expectation_decorator({description: constraint}, "fail")


def expect_all(expectations: Mapping[str, str]) -> Callable[[Any], Any]:
    return _expectation_decorator(expectations, "warn")


def expect_all_or_drop(expectations: Mapping[str, str]) -> Callable[[Any], Any]:
    return _expectation_decorator(expectations, "drop")


def expect_all_or_fail(expectations: Mapping[str, str]) -> Callable[[Any], Any]:
    return _expectation_decorator(expectations, "fail")


def _expectation_decorator(rules: Mapping[str, str], action: Action) -> Callable[[Any], Any]:
    where = user_location()
    expectations = _expectations(rules, action, where)

    def decorate(target: Any) -> Any:
        if target is None:
            # placed above @table (which returns None): the dataset it just declared
            registry = registries.active()
            registry.expect(registry.last_flow("an expectation"), expectations)
            return None
        if not callable(target):
            raise PipelineSourceError(
                f"{where}: an expectation decorates a query function; got {type(target).__name__}"
            )
        registered = _registered_flow(target)
        if registered is not None:
            registries.active().expect(registered, expectations)
            return target
        setattr(target, EXPECTATIONS_ATTR, [*getattr(target, EXPECTATIONS_ATTR, []), *expectations])
        return target

    return decorate


def _expectations(rules: Mapping[str, str] | None, action: Action, where: str) -> list[Expectation]:
    if rules is None:
        return []
    if not isinstance(rules, Mapping):
        raise PipelineSourceError(
            f"{where}: expectations are a mapping of name to SQL condition, e.g. "
            f"{{'valid_id': 'id IS NOT NULL'}}; got {type(rules).__name__}"
        )
    found = []
    for name, condition in rules.items():
        if not isinstance(name, str) or not name.strip():
            raise PipelineSourceError(f"{where}: an expectation needs a name (a non-empty string)")
        if not isinstance(condition, str) or not condition.strip():
            raise PipelineSourceError(
                f"{where}: expectation '{name}': the constraint must be a SQL condition string, "
                f"got {condition!r}"
            )
        found.append(Expectation(name, condition.strip(), action, where))
    return found


def _registered_flow(func: Callable[..., Any]) -> FlowDef | None:
    from pyspark.pipelines.graph_element_registry import _graph_element_registry_context_var

    registry = _graph_element_registry_context_var.get()
    if isinstance(registry, registries.LocalRegistry):
        return registry.flow_of(func)
    return None


# ---- helpers -------------------------------------------------------------------------------


def _apply(outer: Callable[[QueryFunction], None], func: QueryFunction | None) -> Decorator | None:
    """`@decorator` and `@decorator(...)` both work, as in OSS and Databricks."""
    if func is not None:
        outer(func)
        return None
    return outer


def _mark_private(name: str, private: bool) -> None:
    if private:
        registries.active().dataset_named(name).private = True


def _local_only(path: str | None, row_filter: str | None, format: str | None) -> None:
    where = user_location()
    if format not in (None, "delta"):
        raise PipelineSourceError(
            f"{where}: format={format!r}: pipeline tables are Delta tables, locally as on "
            "Databricks; remove format"
        )
    if path is not None:
        raise PipelineSourceError(
            f"{where}: path={path!r}: pipelines with Unity Catalog store tables in their "
            "schema, not at a path; remove path"
        )
    if row_filter is not None:
        print(
            f"{where}: warning: row_filter {row_filter!r} is not applied locally (Unity "
            "Catalog applies it on Databricks); the local table holds every row",
            file=sys.stderr,
        )


def _column_names(columns: Sequence[str | Column], where: str) -> list[str]:
    if isinstance(columns, str):
        raise PipelineSourceError(
            f"{where}: expected a list of column names, got the string {columns!r}; "
            f"write [{columns!r}]"
        )
    return [column_sql(c, where).strip("`") for c in columns]


def _optional_names(columns: Sequence[str | Column] | None, where: str) -> tuple[str, ...] | None:
    return None if columns is None else tuple(_column_names(columns, where))
