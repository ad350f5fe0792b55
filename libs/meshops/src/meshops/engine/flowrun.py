"""Run one flow on this machine: its tasks as notebooks on the shared Spark session.

Names are the ones the workspace would use for the same env, user, branch and
commit (brickops via the notebook context the local dbutils provides). The run
shows progress, ends with a summary table and is recorded under the state dir.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.live import Live
from rich.markup import escape

from meshops import config, naming, plan
from meshops.console import err, table
from meshops.context import Context
from meshops.discover import Flow, Mesh
from meshops.engine import session
from meshops.engine.dbutils import SECRET_PREFIX, LocalDbutils, TaskValues
from meshops.engine.notebook import (
    NotebookError,
    NotebookRunner,
    TaskInterrupted,
    databricks_globals,
)
from meshops.engine.output import redact, redact_value, register_secret, task_output
from meshops.engine.runs import RunRecord, RunStore, TaskRecord
from meshops.engine.scheduler import Node, Outcome, Scheduler, Status, TaskFailed, result_state
from meshops.errors import InvalidInput, display_path
from meshops.spec import FlowSpec
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ICONS = {
    Status.PENDING: "[dim]·[/dim]",
    Status.RUNNING: "[cyan]▶[/cyan]",
    Status.SUCCESS: "[green]✓[/green]",
    Status.FAILED: "[red]✗[/red]",
    Status.TIMEDOUT: "[red]⏱[/red]",
    Status.UPSTREAM_FAILED: "[yellow]⤼[/yellow]",
    Status.EXCLUDED: "[dim]−[/dim]",
}


@dataclass(frozen=True)
class RunOptions:
    parameters: Mapping[str, str] = field(default_factory=dict)
    max_workers: int = 2
    progress: bool = True
    job_name: str | None = None
    only: tuple[str, ...] = ()
    """Run just these tasks, without their upstream tasks (like running one notebook)."""


@dataclass
class RunResult:
    record: RunRecord
    outcomes: Mapping[str, Outcome]
    names: naming.Names
    task_values: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    """`dbutils.jobs.taskValues` the tasks set, by (task key, value key)."""

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
    catalogs = {naming.for_notebook(ctx, f"{f.rel}/_.py").catalog for f in mesh.flows}
    return catalogs | external_catalogs(ctx)


def spark_for(ctx: Context, mesh: Mesh) -> SparkSession:
    """The process's session with every mesh catalog registered."""
    state = StatePaths.for_repo(ctx.repo_root)
    return session.get_spark(
        session.SessionOptions(state=state, catalogs=tuple(sorted(mesh_catalogs(ctx, mesh))))
    )


def widgets(ctx: Context, spec: FlowSpec, overrides: Mapping[str, str]) -> dict[str, str]:
    """Job parameters as a job run gets them: meshops' own, the flow's defaults, overrides."""
    defined = {p.name: p.default for p in spec.deployment.parameters}
    unknown = sorted(set(overrides) - set(defined))
    if unknown:
        known = ", ".join(defined) or "none"
        raise InvalidInput(
            f"parameter {', '.join(unknown)} is not defined in {spec.file}; defined: {known}"
        )
    return {**naming.widgets(ctx), **defined, **overrides}


def run_flow(ctx: Context, mesh: Mesh, flow: Flow, options: RunOptions | None = None) -> RunResult:
    """Run every task of `flow` per its deployment.yml; the result says what happened."""
    options = options or RunOptions()
    spec = plan.load(mesh, [flow]).specs[flow.rel]
    params = widgets(ctx, spec, options.parameters)
    session.describe_holder(f"flow {flow.rel}")
    if session.active_options() is None and session.local_start():
        # the local JVM (and the Python workers it forks) inherits the environment it starts in
        with without_credentials():
            spark_for(ctx, mesh)
    spark = spark_for(ctx, mesh)  # databricks-connect needs the credentials to start
    with without_credentials() as secrets:
        return _run(ctx, mesh, flow, spec, params, options, spark, secrets)


def _run(
    ctx: Context,
    mesh: Mesh,
    flow: Flow,
    spec: FlowSpec,
    params: Mapping[str, str],
    options: RunOptions,
    spark: SparkSession,
    secrets: Mapping[str, str],
) -> RunResult:
    dep = spec.deployment
    names = naming.for_notebook(ctx, spec.notebook_path(dep.tasks[0]))
    state = StatePaths.for_repo(ctx.repo_root)
    store = RunStore(state.runs_db)
    record = RunRecord(
        flow=flow.rel,
        env=ctx.env,
        deployment=ctx.deployment,
        job_name=options.job_name,
        names={"catalog": names.catalog, "schema": names.schema, "job": names.job},
        commit=ctx.commit,
    )
    store.save(record)
    logs = state.root / "runs" / record.run_id
    values: dict[tuple[str, str], Any] = {}
    keys = [t.task_key for t in dep.tasks]
    unknown = sorted(set(options.only) - set(keys))
    if unknown:
        raise InvalidInput(
            f"--task {', '.join(unknown)}: not in {spec.file}; tasks: {', '.join(keys)}"
        )
    chosen = [t for t in dep.tasks if not options.only or t.task_key in options.only]
    nodes = [
        Node(
            key=t.task_key,
            depends_on=tuple(d for d in t.dependencies if not options.only or d in options.only),
            run_if=t.effective_run_if,
            max_retries=t.max_retries,
            min_retry_interval_millis=t.min_retry_interval_millis or 0,
            retry_on_timeout=bool(t.retry_on_timeout),
            timeout_seconds=t.timeout_seconds,
        )
        for t in chosen
    ]
    tables: dict[str, dict[str, int]] = {}
    results: dict[str, str] = {}
    active: dict[str, str] = {}
    notebooks = _Notebooks(spark, state, ctx, values, secrets)
    _mark_dev_schemas(spark, ctx, spec)

    def execute(node: Node, attempt: int) -> None:
        task = dep.task(node.key)
        path = spec.notebook_path(task)
        tag = f"{record.run_id}:{node.key}:{attempt}"
        active[node.key] = tag
        with task_output(logs / f"{node.key}.log"), _spark_group(spark, tag):
            try:
                exit_value = notebooks.run(path, {**params, **task.base_parameters}, node.key)
            finally:
                written = session.drain_writes(spark, tag)
        tables[node.key] = {name: spark.table(name).count() for name in dict.fromkeys(written)}
        if exit_value:
            results[node.key] = redact(exit_value)

    def interrupt(node: Node, thread: threading.Thread) -> None:
        _interrupt(spark, active.get(node.key), thread)

    view = _Progress(flow.rel, nodes, enabled=options.progress)
    scheduler = Scheduler(
        nodes, execute, interrupt=interrupt, max_workers=options.max_workers, listener=view.update
    )
    with _flow_environment(ctx, flow, state), view:
        outcomes = scheduler.run()
    leaves = {n.key for n in nodes} - {d for n in nodes for d in n.depends_on}
    record.status = result_state(outcomes.values(), leaves)
    record.ended = time.time()
    record.tasks = [
        TaskRecord(
            key=o.key,
            status=o.status.value,
            attempts=o.attempts,
            seconds=round(o.seconds, 2),
            error=redact(o.error),
            tables=tables.get(o.key, {}),
            log=str(logs / f"{o.key}.log") if o.attempts else "",
            result=results.get(o.key, ""),
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


@dataclass
class _Notebooks:
    """Runs a flow's notebooks, each with its own globals and a local dbutils."""

    spark: SparkSession
    state: StatePaths
    ctx: Context
    values: dict[tuple[str, str], Any]
    secrets: Mapping[str, str] = field(default_factory=dict)

    def run(self, path: Path, widgets: Mapping[str, str], task_key: str) -> str | None:
        """Run `path` (.py or .ipynb); its `dbutils.notebook.exit` value, if any."""
        dbutils = LocalDbutils(
            state=self.state,
            # workspace notebook paths have no extension, for .ipynb as for .py
            notebook_path=naming.notebook_key(
                self.ctx, path.with_suffix("") if path.suffix == ".ipynb" else path
            ),
            user=self.ctx.user_slug,
            widgets=widgets,
            task_values=TaskValues(task_key, self.values),
            run_notebook=lambda other, args: self.child(path, other, args),
            secrets=self.secrets,
        )
        namespace = databricks_globals(self.spark, dbutils, display)
        runner = NotebookRunner(namespace, run_sql=self.spark.sql, show=display)
        try:
            return runner.run(path)
        except NotebookError as exc:
            where = exc.location(display_path(exc.path, self.ctx.repo_root))
            raise TaskFailed(f"{where}: {exc.reason}", exc.details) from exc

    def child(self, parent: Path, other: str, args: Mapping[str, str]) -> str | None:
        """`dbutils.notebook.run`: another notebook with its own globals and widgets."""
        from meshops.engine.notebook import NOTEBOOK_SUFFIXES, find_notebook

        target = (parent.parent / other).resolve()
        path = find_notebook(target)  # `x` is x.py, else the exported x.ipynb, as %run finds it
        if path is None:
            shown = target if target.suffix in NOTEBOOK_SUFFIXES else f"{target}(.py|.ipynb)"
            raise TaskFailed(f"dbutils.notebook.run({other!r}): no notebook at {shown}")
        return self.run(path, {**naming.widgets(self.ctx), **args}, path.stem)


def display(obj: Any, *args: Any, **kwargs: Any) -> None:
    """Databricks' display(), as text in the task's log; any object, since notebooks pass any.

    Spark DataFrames show their first rows (a failing query still fails the cell, as in the
    workspace); pandas objects their head; figures only a note (no GUI); anything else its repr.
    """
    if _is_spark_dataframe(obj) and getattr(obj, "isStreaming", False) is not True:
        obj.show(20, truncate=False)
    else:
        print(_display_text(obj))


def _is_spark_dataframe(obj: Any) -> bool:
    module = type(obj).__module__ or ""
    return (
        module.startswith("pyspark.sql")
        and hasattr(obj, "schema")
        and callable(getattr(obj, "show", None))
    )


def _defined(kind: type) -> set[str]:
    """Names the class (or a base other than object) defines itself."""
    return {name for base in kind.__mro__ if base is not object for name in vars(base)}


def _display_text(obj: Any) -> str:
    """The text display() prints for anything but a Spark DataFrame."""
    kind = type(obj)
    try:
        if _is_spark_dataframe(obj):
            return f"<streaming DataFrame {obj.schema.simpleString()}: not displayed locally>"
        figure: Any = obj if hasattr(obj, "savefig") else getattr(obj, "figure", None)
        if (kind.__module__ or "").startswith("matplotlib") and hasattr(figure, "savefig"):
            return f"<matplotlib figure, {len(figure.axes)} axes: produced, not shown locally>"
        if callable(getattr(obj, "to_string", None)) and callable(getattr(obj, "head", None)):
            return str(obj.head(20).to_string())
        if isinstance(obj, str):
            return obj
        if "__repr__" not in _defined(kind) and hasattr(obj, "_repr_html_"):
            return f"<{kind.__name__}: HTML output, not shown locally>"
        return repr(obj)
    except Exception as exc:  # display must never fail a notebook over how to print something
        return f"<{kind.__name__}: not displayable locally ({type(exc).__name__}: {exc})>"


def _install_display() -> None:
    """`DataFrame.display()` exists in Databricks; give local DataFrames the same method."""
    from pyspark.sql import DataFrame

    if not hasattr(DataFrame, "display"):
        DataFrame.display = display  # type: ignore[attr-defined]
    with contextlib.suppress(ImportError):  # Spark Connect's client is optional
        from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame

        if not hasattr(ConnectDataFrame, "display"):
            ConnectDataFrame.display = display  # type: ignore[attr-defined]


@contextmanager
def _spark_group(spark: SparkSession, tag: str) -> Iterator[None]:
    """Tag the task's Spark jobs (to cancel them on timeout) and record its writes.

    Tasks share one session here, while each Databricks task gets its own: a task's
    `USE CATALOG`/`USE SCHEMA` and `spark.conf.set` are undone when it ends, so the next
    task starts where a notebook does.
    """
    with session.task_tag(spark, tag), _session_state_restored(spark):
        if session.mode(spark) == "local":
            spark.sparkContext.setJobGroup(tag, tag, interruptOnCancel=True)
            try:
                yield
            finally:
                spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        else:
            spark.addTag(tag)
            try:
                yield
            finally:
                spark.removeTag(tag)


_KEPT_SETTINGS = "spark.sql.catalog."
"""Catalogs a task registers (CREATE CATALOG) outlive it, as catalogs do in a metastore."""


@contextmanager
def _session_state_restored(spark: SparkSession) -> Iterator[None]:
    catalog, schema = spark.catalog.currentCatalog(), spark.catalog.currentDatabase()
    settings = dict(spark.conf.getAll)
    try:
        yield
    finally:
        spark.catalog.setCurrentCatalog(catalog)
        spark.catalog.setCurrentDatabase(schema)
        for key, value in dict(spark.conf.getAll).items():
            if key.startswith(_KEPT_SETTINGS) or settings.get(key) == value:
                continue
            with contextlib.suppress(Exception):  # a setting Spark will not change back
                if key in settings:
                    spark.conf.set(key, settings[key])
                else:
                    spark.conf.unset(key)


def _interrupt(spark: SparkSession, tag: str | None, thread: threading.Thread) -> None:
    """Stop a timed-out task: cancel its Spark jobs and raise into its Python thread."""
    if tag is not None:
        if session.mode(spark) == "local":
            spark.sparkContext.cancelJobGroup(tag)
        else:
            spark.interruptTag(tag)
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(TaskInterrupted)
        )


# workspace and cloud credentials a notebook never sees in a job run (it gets dbutils.secrets)
CREDENTIAL_VARIABLE = re.compile(
    r"(?:^|_)(?:TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|PRIVATE_KEY|API_KEY|ACCESS_KEY"
    r"|ACCOUNT_KEY|SAS_TOKEN)(?:_|$)",
    re.IGNORECASE,
)


def is_credential(name: str) -> bool:
    """DATABRICKS_TOKEN, *_CLIENT_SECRET, *PASSWORD*, GOOGLE_CREDENTIALS, MESHOPS_SECRET_*..."""
    return bool(CREDENTIAL_VARIABLE.search(name)) or name.startswith(SECRET_PREFIX)


@contextmanager
def without_credentials() -> Iterator[dict[str, str]]:
    """Take credentials out of the environment while a flow runs; all restored after.

    Yields the local secrets (`MESHOPS_SECRET_*`) for `dbutils.secrets`; every value taken
    is redacted from task output, results and run records from now on.
    """
    taken = {k: v for k, v in os.environ.items() if is_credential(k)}
    for key, value in taken.items():
        register_secret(value)
        os.environ.pop(key, None)
    try:
        yield {k: v for k, v in taken.items() if k.startswith(SECRET_PREFIX)}
    finally:
        os.environ.update(taken)


def _mark_dev_schemas(spark: SparkSession, ctx: Context, spec: FlowSpec) -> None:
    """Create a dev run's schemas with the evidence the janitor needs to delete them later.

    A schema made here carries `meshops.deployment=<deployment>` (DBPROPERTIES, as Unity
    Catalog schema properties on Databricks); the notebook's own `CREATE SCHEMA IF NOT
    EXISTS` then finds it. A schema that already exists is left as it is: meshops did not
    create it, so it gets no evidence.
    """
    if session.mode(spark) != "local":
        return
    state = StatePaths.for_repo(ctx.repo_root)
    for full, properties in plan.dev_schemas(ctx, spec).items():
        catalog, _, schema = full.partition(".")
        folder = state.warehouse / f"{catalog}__{schema}.db"
        if folder.exists() or schema in _schemas_of(spark, catalog):
            continue
        shown = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
        spark.sql(f"CREATE SCHEMA {full} WITH DBPROPERTIES ({shown})")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / plan.SCHEMA_MARKER).write_text(json.dumps(properties), encoding="utf-8")


def _schemas_of(spark: SparkSession, catalog: str) -> set[str]:
    return {row[0] for row in spark.sql(f"SHOW SCHEMAS IN {catalog}").collect()}


@contextmanager
def _flow_environment(ctx: Context, flow: Flow, state: StatePaths) -> Iterator[None]:
    """What a job run from a Git folder gives a notebook: its folder as working directory,
    that folder and the repository root on sys.path, `/Volumes` and `/dbfs` for plain Python,
    MLflow configured. All restored after the run.
    """
    from meshops.engine.paths import databricks_paths, import_roots

    _install_display()
    folder = flow.folder(ctx.repo_root)
    saved_cwd = Path.cwd()
    tracking = f"sqlite:///{state.mlflow_db}"
    env = {
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_REGISTRY_URI": tracking,
        # where new experiments keep artifacts (else ./mlruns in the flow folder). MLflow reads
        # this for its server; a test checks it still applies to a client (mlflow is pinned <4)
        "_MLFLOW_SERVER_ARTIFACT_ROOT": str(state.mlflow_artifacts),
    }
    saved_env = {k: os.environ.get(k) for k in env}
    state.root.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    os.chdir(folder)
    try:
        with import_roots(folder, ctx.repo_root), databricks_paths(state):
            yield
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Progress:
    """Live task list while running (a line per change when not on a terminal)."""

    def __init__(self, title: str, nodes: list[Node], *, enabled: bool) -> None:
        self.title, self.enabled = title, enabled
        self.rows: dict[str, Outcome] = {n.key: Outcome(n.key) for n in nodes}
        self.live = Live(self._render(), console=err, refresh_per_second=4, transient=True)
        self.lock = threading.Lock()

    def __enter__(self) -> _Progress:
        if self.enabled and err.is_terminal:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live.is_started:
            self.live.stop()

    def update(self, outcome: Outcome) -> None:
        with self.lock:
            self.rows[outcome.key] = outcome
            if not self.enabled:
                return
            if self.live.is_started:
                self.live.update(self._render())
            elif outcome.status != Status.PENDING:
                extra = f" ({outcome.seconds:.1f} s)" if outcome.status.done else ""
                status = outcome.status.value.lower()
                err.print(f"{ICONS[outcome.status]} {escape(outcome.key)} {status}{extra}")

    def _render(self) -> Any:
        view = table("task", "status", "time", title=f"running {self.title}")
        for o in self.rows.values():
            view.add_row(o.key, f"{ICONS[o.status]} {o.status.value.lower()}", f"{o.seconds:.1f} s")
        return view


def summary(result: RunResult) -> Any:
    """The table a run ends with: each task, its status, time and the tables it wrote."""
    record = result.record
    view = table(
        "task",
        "status",
        "tries",
        "time",
        "tables written (rows), result, error",
        title=f"{record.flow} · run {record.run_id} · {record.status} in {record.seconds:.1f} s",
    )
    for task in record.tasks:
        written = "\n".join(f"{name} ({rows:,})" for name, rows in task.tables.items())
        status = f"{ICONS[Status(task.status)]} {task.status.lower()}"
        notes = [written] if written else []
        if task.result:
            notes.append(f"result: {task.result}")
        if task.error:
            notes.append(f"[red]{escape(task.error)}[/red]")
        view.add_row(
            task.key, status, str(task.attempts), f"{task.seconds:.1f} s", "\n".join(notes) or "-"
        )
    return view


def overview(results: list[RunResult], ctx: Context) -> Any:
    """One table for several runs: every table written, its rows, and the flow that wrote it."""
    view = table(
        "flow",
        "status",
        "time",
        "table",
        "rows",
        title=f"{len(results)} flow run(s) as {ctx.deployment} (env {ctx.env})",
    )
    for result in results:
        record = result.record
        flow = record.flow.split("/projects/", 1)[-1]
        written = result.tables() or {"-": 0}
        for i, (name, rows) in enumerate(written.items()):
            first = i == 0
            view.add_row(
                flow if first else "",
                record.status if first else "",
                f"{record.seconds:.1f} s" if first else "",
                name,
                f"{rows:,}" if name != "-" else "",
            )
    return view
