"""Run one flow on this machine: its tasks as notebooks on the shared Spark session.

Names are the ones the workspace would use for the same env, user, branch and
commit (brickops via the notebook context the local dbutils provides). A run is recorded
under the state dir it is given, each task's output in its own log there.

The rooms of a run: `process` sets up the process (working directory, environment, paths,
output routing) and restores it; `tasks` runs one task's notebook; `scheduler` runs the DAG;
`view` shows progress on the console it is given. This module ties them together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshops import config, identity, naming, products, resolution
from meshops.context import Context
from meshops.discover import Flow, Mesh
from meshops.engine import resolve, session
from meshops.engine.output import redact, redact_value
from meshops.engine.pipelinerun import PipelineUpdates
from meshops.engine.process import flow_process, without_credentials
from meshops.engine.runs import RunRecord, RunStore, TaskRecord
from meshops.engine.scheduler import Node, Outcome, Scheduler, result_state
from meshops.engine.tasks import Notebooks, Tasks
from meshops.engine.view import Progress, quiet
from meshops.errors import InvalidInput
from meshops.identity import SCHEMA_MARKER
from meshops.spec import FlowSpec, load_specs
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from rich.console import Console


@dataclass(frozen=True)
class RunOptions:
    parameters: Mapping[str, str] = field(default_factory=dict)
    max_workers: int = 2
    progress: bool = True
    """Show the tasks' progress on the run's console (a quiet console shows nothing anyway)."""
    job_name: str | None = None
    only: tuple[str, ...] = ()
    """Run just these tasks, without their upstream tasks (like running one notebook)."""
    full_refresh: bool = False
    """Pipeline updates drop the pipeline's tables and checkpoints and rebuild them."""
    resolved: Mapping[str, str] | None = None
    """Where the flow's product reads resolve, as a deployed job's plan decided (product id
    -> table); None: decided now, from what this machine has (`engine.resolve`)."""


@dataclass
class RunResult:
    record: RunRecord
    outcomes: Mapping[str, Outcome]
    names: naming.Names
    task_values: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    """`dbutils.jobs.taskValues` the tasks set, by (task key, value key)."""
    product_reads: tuple[products.Resolution, ...] = ()
    """Where the flow's reads of data products resolved (shown in the run summary)."""

    @property
    def ok(self) -> bool:
        return self.record.status == "SUCCESS"

    def tables(self) -> dict[str, int]:
        """Every table the run wrote, with its row count."""
        return {name: rows for task in self.record.tasks for name, rows in task.tables.items()}


def external_catalogs(ctx: Context) -> set[str]:
    """Catalogs read but not made by a flow of this repo (e.g. `samples`)."""
    return set(config.load(ctx.repo_root).settings.external_catalogs)


def mesh_catalogs(ctx: Context, mesh: Mesh) -> set[str]:
    """Catalogs a flow may read locally: every flow's catalog and the configured external ones."""
    ident = identity.of(ctx)
    catalogs = {ident.names_for(f.rel).catalog for f in mesh.flows}
    return catalogs | external_catalogs(ctx)


def spark_for(ctx: Context, mesh: Mesh, state: StatePaths | None = None) -> SparkSession:
    """The process's session with every mesh catalog registered (state: the repo's default)."""
    state = state or StatePaths.for_repo(ctx.repo_root)
    return session.get_spark(
        session.SessionOptions(state=state, catalogs=tuple(sorted(mesh_catalogs(ctx, mesh))))
    )


def widgets(ctx: Context, spec: FlowSpec, overrides: Mapping[str, str]) -> dict[str, str]:
    """Job parameters as a job run gets them: meshops' own, the flow's defaults, overrides."""
    defined = {p.name: p.default for p in spec.definition.parameters}
    unknown = sorted(set(overrides) - set(defined))
    if unknown:
        known = ", ".join(defined) or "none"
        raise InvalidInput(
            f"parameter {', '.join(unknown)} is not defined in {spec.file}; defined: {known}"
        )
    return {**identity.of(ctx).parameters, **defined, **overrides}


def nodes(spec: FlowSpec, only: tuple[str, ...] = ()) -> list[Node]:
    """The scheduler's view of the flow's tasks (just `only`, if given, without their upstream)."""
    dep = spec.definition
    keys = [t.task_key for t in dep.runnable_tasks]
    unknown = sorted(set(only) - set(keys))
    if unknown:
        raise InvalidInput(
            f"--task {', '.join(unknown)}: not in {spec.file}; tasks: {', '.join(keys)}"
        )
    return [
        Node(
            key=t.task_key,
            depends_on=tuple(d for d in t.dependencies if not only or d in only),
            run_if=t.effective_run_if,
            max_retries=t.max_retries,
            min_retry_interval_millis=t.min_retry_interval_millis or 0,
            retry_on_timeout=bool(t.retry_on_timeout),
            timeout_seconds=t.timeout_seconds,
        )
        for t in dep.runnable_tasks
        if not only or t.task_key in only
    ]


def run_flow(
    ctx: Context,
    mesh: Mesh,
    flow: Flow,
    options: RunOptions | None = None,
    *,
    state: StatePaths | None = None,
    spec: FlowSpec | None = None,
    console: Console | None = None,
) -> RunResult:
    """Run every task of `flow` per its deployment.yml; the result says what happened.

    `state`: the state dir the run uses and is recorded in (default: the repository's);
    `spec`: the flow's spec if the caller loaded it already; `console`: where progress shows
    (default: nowhere).
    """
    options = options or RunOptions()
    state = state or StatePaths.for_repo(ctx.repo_root)
    spec = spec or load_specs(mesh, [flow]).flows[flow.rel]
    params = widgets(ctx, spec, options.parameters)
    chosen = nodes(spec, options.only)
    session.describe_holder(f"flow {flow.rel}")
    if session.active_options() is None and session.local_start():
        # the local JVM (and the Python workers it forks) inherits the environment it starts in
        with without_credentials():
            spark_for(ctx, mesh, state)
    spark = spark_for(ctx, mesh, state)  # databricks-connect needs the credentials to start
    catalog = _products(mesh, flow, spec)
    reads = _product_reads(ctx, spec, options, spark, state, catalog)
    params = {**params, **resolution.parameters(reads)}
    progress = Progress(console or quiet(), flow.rel, chosen, enabled=options.progress)
    foreign = tuple(r.table.lower() for r in reads if r.foreign)  # read, never written
    # the progress view first: a live view replaces sys.stdout, which the process then routes
    with progress, flow_process(ctx.repo_root, flow.folder(ctx.repo_root), state) as secrets:
        result = _run(
            ctx, flow, spec, params, options, spark, state, chosen, secrets, progress, foreign
        )
    result.product_reads = tuple(reads)
    if catalog is not None:
        _check_products(ctx, spark, catalog, flow, result, reads, state)
    return result


def _products(mesh: Mesh, flow: Flow, spec: FlowSpec) -> products.Products | None:
    """The mesh's products when the flow consumes or publishes any (None: neither)."""
    known = products.published(mesh)
    if not spec.definition.consumes and not any(p.flow == flow.rel for p in known.values()):
        return None
    return products.load(mesh, known=known)


def _product_reads(
    ctx: Context,
    spec: FlowSpec,
    options: RunOptions,
    spark: SparkSession,
    state: StatePaths,
    catalog: products.Products | None,
) -> list[products.Resolution]:
    """Where the flow's reads of products resolve: as the job's plan said, else as this
    machine decides now."""
    if catalog is None or not spec.definition.consumes:
        return []
    ident = identity.of(ctx)
    if options.resolved is not None:
        given = identity.products_parameter(options.resolved)
        return resolution.from_parameters(ident, catalog.by_id, given) or []
    return resolve.local(ident, spark, state, catalog.by_id, spec.definition.consumes)


def _check_products(
    ctx: Context,
    spark: SparkSession,
    catalog: products.Products,
    flow: Flow,
    result: RunResult,
    reads: list[products.Resolution],
    state: StatePaths,
) -> None:
    """Fail the tasks that wrote a table the run resolved as another deployment's read, or a
    product whose schema breaks its declared columns (the data contract)."""
    record = result.record
    written = {name: t.key for t in record.tasks for name in t.tables}
    failures: dict[str, str] = {}
    for name in resolution.foreign_writes(written, reads):
        failures[written[name]] = (
            f"wrote {name}, which this run reads as another deployment's data product; "
            "writes never go to another deployment: write to the flow's own schema"
        )
    ident = identity.of(ctx)
    broken = resolve.contract_failures(ident, spark, catalog, flow.rel, written)
    for key, message in broken.items():
        failures[key] = f"{failures[key]}; {message}" if key in failures else message
    if not failures:
        return
    for done in record.tasks:
        if done.key in failures:
            done.status = "FAILED"
            done.error = "; ".join(e for e in (done.error, failures[done.key]) if e)
    record.status = "FAILED"
    RunStore(state.runs_db).save(record)


def _run(
    ctx: Context,
    flow: Flow,
    spec: FlowSpec,
    params: Mapping[str, str],
    options: RunOptions,
    spark: SparkSession,
    state: StatePaths,
    chosen: list[Node],
    secrets: Mapping[str, str],
    progress: Progress,
    read_only_tables: tuple[str, ...] = (),
) -> RunResult:
    ident = identity.of(ctx)
    names = ident.names_for(flow.rel)
    store = RunStore(state.runs_db)
    record = RunRecord(
        flow=flow.rel,
        env=ctx.env,
        deployment=ident.id,
        job_name=options.job_name,
        names={"catalog": names.catalog, "schema": names.schema, "job": names.job},
        commit=ctx.commit,
    )
    store.save(record)
    values: dict[tuple[str, str], Any] = {}
    tasks = Tasks(
        spark,
        spec,
        params,
        Notebooks(spark, state, ctx, values, secrets),
        run_id=record.run_id,
        logs=state.root / "runs" / record.run_id,
        pipelines=PipelineUpdates(spark, ctx, flow, spec, state, options.full_refresh),
        read_only_tables=read_only_tables,
    )
    _mark_dev_schemas(spark, ctx, spec, state)
    scheduler = Scheduler(
        chosen,
        tasks.execute,
        interrupt=tasks.interrupt,
        max_workers=options.max_workers,
        listener=progress.update,
    )
    outcomes = scheduler.run()
    leaves = {n.key for n in chosen} - {d for n in chosen for d in n.depends_on}
    record.status = result_state(outcomes.values(), leaves)
    record.ended = time.time()
    record.tasks = [
        TaskRecord(
            key=o.key,
            status=o.status.value,
            attempts=o.attempts,
            seconds=round(o.seconds, 2),
            error=redact(o.error),
            tables=tasks.tables.get(o.key, {}),
            reads=tasks.reads.get(o.key, []),
            expectations=tasks.expectations.get(o.key, []),
            log=str(tasks.log(o.key)) if o.attempts else "",
            result=tasks.results.get(o.key, ""),
        )
        for o in outcomes.values()
    ]
    store.save(record)
    for task in record.tasks:
        if task.error and task.log and Path(task.log).exists():
            details = outcomes[task.key].details
            if details:
                with Path(task.log).open("a", encoding="utf-8") as log:
                    log.write(redact(details))
    shown = {key: redact_value(value) for key, value in values.items()}
    return RunResult(record, outcomes, names, shown)


def _mark_dev_schemas(spark: SparkSession, ctx: Context, spec: FlowSpec, state: StatePaths) -> None:
    """Create a dev run's schemas with the evidence the janitor needs to delete them later.

    A schema made here carries `meshops.deployment=<deployment>` (DBPROPERTIES, as Unity
    Catalog schema properties on Databricks); the notebook's own `CREATE SCHEMA IF NOT
    EXISTS` then finds it. A schema that already exists is left as it is: meshops did not
    create it, so it gets no evidence.
    """
    if not session.owns_catalogs(spark):
        return
    for full, properties in identity.of(ctx).dev_schemas(spec.notebook_paths()).items():
        catalog, _, schema = full.partition(".")
        folder = state.warehouse / f"{catalog}__{schema}.db"
        if folder.exists() or schema in _schemas_of(spark, catalog):
            continue
        shown = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
        spark.sql(f"CREATE SCHEMA {full} WITH DBPROPERTIES ({shown})")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SCHEMA_MARKER).write_text(json.dumps(properties), encoding="utf-8")


def _schemas_of(spark: SparkSession, catalog: str) -> set[str]:
    return {row[0] for row in spark.sql(f"SHOW SCHEMAS IN {catalog}").collect()}
