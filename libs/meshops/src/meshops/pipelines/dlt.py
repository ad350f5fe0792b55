"""The `dlt` module of Databricks pipelines, for sources that `import dlt`.

While a local update loads its sources this module is `sys.modules["dlt"]`; every function maps
onto the same registry as `from pyspark import pipelines as dp` (see `api`).
"""

from __future__ import annotations

from meshops.pipelines.api import (
    append_flow,
    apply_changes,
    apply_changes_from_snapshot,
    create_auto_cdc_flow,
    create_auto_cdc_from_snapshot_flow,
    create_sink,
    create_streaming_live_table,
    create_streaming_table,
    create_table,
    create_target_table,
    expect,
    expect_all,
    expect_all_or_drop,
    expect_all_or_fail,
    expect_or_drop,
    expect_or_fail,
    materialized_view,
    read,
    read_stream,
    table,
    temporary_view,
    view,
)

__all__ = [
    "append_flow",
    "apply_changes",
    "apply_changes_from_snapshot",
    "create_auto_cdc_flow",
    "create_auto_cdc_from_snapshot_flow",
    "create_sink",
    "create_streaming_live_table",
    "create_streaming_table",
    "create_table",
    "create_target_table",
    "expect",
    "expect_all",
    "expect_all_or_drop",
    "expect_all_or_fail",
    "expect_or_drop",
    "expect_or_fail",
    "materialized_view",
    "read",
    "read_stream",
    "table",
    "temporary_view",
    "view",
]
