"""A task that updates its flow's pipeline, run locally: the names the deploy would give the
pipeline (brickops: catalog from the path, target schema from `schema:` and the identity),
its sources from the flow folder, and an update by `meshops.pipelines.run_update`.

The same code runs `meshops run` of a pipeline flow and `run-job` of a job whose task has
`pipeline_task`: both know the identity the names come from, so no registry lookup is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console

from meshops import identity, naming
from meshops.context import Context
from meshops.discover import Flow
from meshops.spec import FlowSpec
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from meshops.pipelines.result import UpdateResult
    from meshops.pipelines.update import LocalPipeline


@dataclass
class PipelineUpdates:
    """Runs updates of one flow's pipeline for the run's tasks."""

    spark: SparkSession
    ctx: Context
    flow: Flow
    spec: FlowSpec
    state: StatePaths
    full_refresh: bool = False
    results: list[UpdateResult] = field(default_factory=list)

    def pipeline(self) -> LocalPipeline:
        """The pipeline as the deploy names it, with this run's identity and state folder."""
        from meshops.pipelines.update import LocalPipeline

        ident = identity.of(self.ctx)
        definition = self.spec.definition
        names = ident.names_for(self.flow.rel)
        return LocalPipeline(
            name=names.pipeline,
            catalog=names.catalog,
            schema=naming.pipeline_schema(
                ident, self.flow.rel, definition.pipeline_schema or self.flow.name
            ),
            sources=tuple(self.spec.pipeline_sources()),
            configuration={**definition.configuration, **ident.pipeline_configuration()},
            state_dir=self.state.root,
        )

    def update(self, *, full_refresh: bool) -> UpdateResult:
        """One update; its progress and summary go to stdout (the task's log). Raises as
        `run_update` does when an expectation fails or a source is wrong."""
        from meshops.pipelines.update import run_update

        console = Console(width=160, force_terminal=False, soft_wrap=True)
        result = run_update(
            self.spark,
            self.pipeline(),
            full_refresh=full_refresh or self.full_refresh,
            console=console,
        )
        self.results.append(result)
        return result


def tables_of(spark: SparkSession, result: UpdateResult) -> dict[str, int]:
    """Each Delta table the update wrote (datasets and quarantines), with its rows now."""
    written = [d.table for d in result.datasets if d.table]
    written += [d.quarantine_table for d in result.datasets if d.quarantine_table]
    return {name: spark.table(name).count() for name in dict.fromkeys(written)}


def expectations_of(result: UpdateResult) -> list[dict[str, Any]]:
    """Per expectation of the update: dataset, name, action, passed and failed records."""
    return [
        {
            "dataset": e.dataset,
            "name": e.name,
            "action": e.action,
            "passed": e.passed_records,
            "failed": e.failed_records,
        }
        for e in result.expectations
    ]
