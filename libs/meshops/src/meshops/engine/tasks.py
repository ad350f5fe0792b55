"""One task of a local run: its notebook on the shared Spark session, as a job task runs it.

A task's notebook gets its own globals and a local `dbutils`; what it prints goes to its log;
its Spark jobs carry a tag (so a timeout cancels them), the tables it writes are counted and
the tables it reads are named (lineage);
its `USE CATALOG` and `spark.conf.set` end with it, as each Databricks task has its own session.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshops import identity, naming
from meshops.context import Context
from meshops.engine import producers, session
from meshops.engine.dbutils import LocalDbutils, TaskValues
from meshops.engine.notebook import (
    NotebookError,
    NotebookRunner,
    TaskInterrupted,
    databricks_globals,
    display,
)
from meshops.engine.output import redact, task_output
from meshops.engine.pipelinerun import PipelineUpdates, expectations_of, tables_of
from meshops.engine.scheduler import Node, TaskFailed, try_label
from meshops.errors import display_path
from meshops.spec import FlowSpec
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class Notebooks:
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
                self.ctx.repo_root, path.with_suffix("") if path.suffix == ".ipynb" else path
            ),
            user=identity.of(self.ctx).user,
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
            reason = producers.explain(exc.reason, exc.__cause__, self.ctx, path)
            raise TaskFailed(f"{where}: {reason}", exc.details) from exc

    def child(self, parent: Path, other: str, args: Mapping[str, str]) -> str | None:
        """`dbutils.notebook.run`: another notebook with its own globals and widgets."""
        from meshops.engine.notebook import NOTEBOOK_SUFFIXES, find_notebook

        target = (parent.parent / other).resolve()
        path = find_notebook(target)  # `x` is x.py, else the exported x.ipynb, as %run finds it
        if path is None:
            shown = target if target.suffix in NOTEBOOK_SUFFIXES else f"{target}(.py|.ipynb)"
            raise TaskFailed(f"dbutils.notebook.run({other!r}): no notebook at {shown}")
        return self.run(path, {**identity.of(self.ctx).parameters, **args}, path.stem)


@dataclass
class Tasks:
    """What the scheduler calls for a run's tasks: `execute` one attempt, `interrupt` one.

    Collects, per task key, the tables written (with rows), the tables read and the exit
    value.
    """

    spark: SparkSession
    spec: FlowSpec
    params: Mapping[str, str]
    notebooks: Notebooks
    run_id: str
    logs: Path
    """The run's folder: `<task key>.log` per task."""
    pipelines: PipelineUpdates | None = None
    """Runs the flow's pipeline for a task with `pipeline_task`."""
    read_only_tables: tuple[str, ...] = ()
    """Tables the run reads from another deployment (data products): writes are refused."""
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    reads: dict[str, list[str]] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    expectations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _active: dict[str, str] = field(default_factory=dict, init=False)

    def log(self, key: str) -> Path:
        return self.logs / f"{key}.log"

    def execute(self, node: Node, attempt: int) -> None:
        task = self.spec.definition.task(node.key)
        path = self.spec.notebook_path(task)
        tag = f"{self.run_id}:{node.key}:{attempt}"
        self._active[node.key] = tag
        with (
            task_output(self.log(node.key)),
            spark_group(self.spark, tag, read_only_tables=self.read_only_tables),
        ):
            tried = f"[meshops] {node.key}: {try_label(attempt, node.tries)}"
            if node.tries > 1:  # each try appends to the task's one log
                print(tried)
            try:
                if task.pipeline_task is not None and self.pipelines is not None:
                    update = self.pipelines.update(full_refresh=task.pipeline_task.full_refresh)
                    exit_value = None
                else:
                    update = None
                    exit_value = self.notebooks.run(
                        path, {**self.params, **task.base_parameters}, node.key
                    )
            except Exception as error:
                if attempt < node.tries:  # the last try's error ends the log (flowrun)
                    print(f"{tried} failed: {error}\n{getattr(error, 'details', '')}".rstrip())
                raise
            finally:
                written = session.drain_writes(self.spark, tag)
                read = session.drain_reads(self.spark, tag)
        self.reads[node.key] = read
        if update is not None:  # its streams write from their own threads: the update knows
            self.tables[node.key] = tables_of(self.spark, update)
            self.expectations[node.key] = expectations_of(update)
        else:
            self.tables[node.key] = {
                name: self.spark.table(name).count() for name in dict.fromkeys(written)
            }
        if exit_value:
            self.results[node.key] = redact(exit_value)

    def interrupt(self, node: Node, thread: threading.Thread) -> None:
        interrupt(self.spark, self._active.get(node.key), thread)


@contextmanager
def spark_group(
    spark: SparkSession, tag: str, *, read_only_tables: tuple[str, ...] = ()
) -> Iterator[None]:
    """Tag the task's Spark jobs (to cancel them on timeout) and record its writes; refuse
    writes to the shared input catalogs and to `read_only_tables`.

    Tasks share one session here, while each Databricks task gets its own: a task's
    `USE CATALOG`/`USE SCHEMA` and `spark.conf.set` are undone when it ends, so the next
    task starts where a notebook does.
    """
    read_only = (*session.flow_shared_inputs(), *read_only_tables)
    with session.task_tag(spark, tag, read_only=read_only), _session_state_restored(spark):
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


def interrupt(spark: SparkSession, tag: str | None, thread: threading.Thread) -> None:
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
