"""The event log of a pipeline: a Delta table `<catalog>.<schema>.event_log_<pipeline>`.

Its columns are those of Lakeflow's event log (as published to a table or read with
`event_log()`), with the `origin` fields a local run knows. `details` is a JSON string, as on
Databricks: a `flow_progress` event carries `flow_progress.metrics.num_output_rows` and
`flow_progress.data_quality` (`dropped_records` and `expectations: [{name, dataset,
passed_records, failed_records}]`); read it with `get_json_object(details, '$.flow_progress...')`
or `from_json` (Databricks' `details:flow_progress...` path syntax is not OSS Spark).

An update writes its events in one append when it ends, failed or not, and keeps earlier
updates' events (a full refresh too). The table is left out of the pipeline's datasets.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EVENT_LOG_PREFIX = "event_log_"

SCHEMA_DDL = (
    "id STRING, sequence STRING, origin STRUCT<pipeline_id: STRING, pipeline_name: STRING, "
    "pipeline_type: STRING, update_id: STRING, dataset_name: STRING, flow_name: STRING, "
    "batch_id: BIGINT>, timestamp TIMESTAMP, message STRING, level STRING, "
    "maturity_level STRING, error STRING, details STRING, event_type STRING"
)


def table_name(catalog: str, schema: str, pipeline: str) -> str:
    """`catalog.schema.event_log_<pipeline name folded to [a-z0-9_]>`."""
    folded = re.sub(r"[^a-z0-9_]+", "_", pipeline.lower()).strip("_") or "pipeline"
    return f"{catalog}.{schema}.{EVENT_LOG_PREFIX}{folded}"


def pipeline_id(pipeline: str) -> str:
    """A stable id per pipeline name (a UUID, as Lakeflow's ids are)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"meshops-local-pipeline:{pipeline}"))


@dataclass
class EventLog:
    """The events of one update, kept until `write`."""

    pipeline: str
    update_id: str
    table: str
    events: list[dict[str, Any]] = field(default_factory=list)
    _base: int = field(default_factory=lambda: time.time_ns() // 1000 * 1000)

    def add(
        self,
        event_type: str,
        message: str,
        details: dict[str, Any],
        *,
        level: str = "INFO",
        dataset: str | None = None,
        flow: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        self.events.append(
            {
                "id": str(uuid.uuid4()),
                "sequence": json.dumps({"control_plane_seq_no": self._base + len(self.events)}),
                "origin": {
                    "pipeline_id": pipeline_id(self.pipeline),
                    "pipeline_name": self.pipeline,
                    "pipeline_type": "WORKSPACE",
                    "update_id": self.update_id,
                    "dataset_name": dataset,
                    "flow_name": flow,
                    "batch_id": None,
                },
                "timestamp": dt.datetime.now(dt.UTC),
                "message": message,
                "level": level,
                "maturity_level": "STABLE",
                "error": None
                if error is None
                else json.dumps(
                    {
                        "fatal": True,
                        "exceptions": [{"class_name": type(error).__name__, "message": str(error)}],
                    }
                ),
                "details": json.dumps({event_type: details}),
                "event_type": event_type,
            }
        )

    def write(self, spark: SparkSession) -> None:
        """Append this update's events to the event log table (made on first use)."""
        if not self.events:
            return
        frame = spark.createDataFrame(self.events, SCHEMA_DDL)
        frame.coalesce(1).write.format("delta").mode("append").saveAsTable(self.table)
