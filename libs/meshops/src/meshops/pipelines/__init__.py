"""Declarative pipelines (Lakeflow / Spark Declarative Pipelines) run on local Spark.

`run_update(spark, LocalPipeline(...))` runs one update of a pipeline whose sources are
written with `from pyspark import pipelines as dp`, `import dlt` or pipeline SQL; README.md
beside this file says which parts come from open-source Spark and which meshops adds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshops.pipelines.errors import (
        ExpectationViolation,
        PipelineError,
        PipelineSourceError,
    )
    from meshops.pipelines.result import UpdateResult
    from meshops.pipelines.update import LocalPipeline, run_update

__all__ = [
    "ExpectationViolation",
    "LocalPipeline",
    "PipelineError",
    "PipelineSourceError",
    "UpdateResult",
    "run_update",
]
_HOMES = {
    "ExpectationViolation": "errors",
    "PipelineError": "errors",
    "PipelineSourceError": "errors",
    "UpdateResult": "result",
    "LocalPipeline": "update",
    "run_update": "update",
}


def __getattr__(name: str) -> Any:
    """Imported on first use: pyspark loads only when a pipeline is really run."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
