"""One update of a pipeline on the local classic Spark session: `run_update`.

1. A session of its own (`spark.newSession()`: same catalogs and metastore, its own settings,
   temporary views and current schema) gets the pipeline `configuration` and uses the target
   `catalog.schema`, so unqualified names are the pipeline's datasets, as on Databricks.
2. The sources load (`loader`) into a graph (`graph`), which is validated.
3. A full refresh drops the pipeline's tables (datasets, quarantine and AUTO CDC state tables
   recorded by earlier updates too) and its checkpoints.
4. Every dataset is built in declaration order; a query function's read of a dataset not
   built yet builds that one first (`reads`), so flows run in dependency order.
   - materialized views (and `@table` over a batch query) are recomputed in full and replace
     their Delta table (`writeTo(...).createOrReplace()`: one atomic commit);
   - streaming flows run `writeStream.foreachBatch(...).trigger(availableNow=True)` with their
     checkpoint under `<state_dir>/pipelines/<pipeline>/checkpoints/<flow>`; each micro-batch
     gets its expectations and is appended with Delta's idempotent writes (`txnAppId` = the
     flow's id, `txnVersion` = the batch id). A batch whose write committed but whose
     checkpoint did not (an update killed in between) is replayed by the next update and
     skipped by Delta: every input row lands exactly once across updates;
   - AUTO CDC flows merge each micro-batch with `cdc.apply_cdc_batch`;
   - views are the query's DataFrame, registered as temporary views of the update's session.
5. Each flow's progress (rows written, expectation counts) goes to the event log table
   (`eventlog`) when the update ends, and the result (`result.UpdateResult`) is returned.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from meshops.engine import autoloader
from meshops.engine import session as sessions
from meshops.errors import MeshopsError
from meshops.pipelines import eventlog, expectations, loader, sqlsource
from meshops.pipelines.errors import PipelineError, PipelineSourceError
from meshops.pipelines.eventlog import EventLog
from meshops.pipelines.expectations import Counts, Guarded
from meshops.pipelines.graph import Dataset, Expectation, FlowDef, Graph
from meshops.pipelines.reads import Resolver
from meshops.pipelines.registry import LocalRegistry
from meshops.pipelines.result import DatasetResult, ExpectationResult, FlowResult, UpdateResult
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

QUARANTINE_SETTING = "meshops.quarantine"
_INHERITED = (
    sessions.TASK_PROPERTY,
    sessions.READ_ONLY_PROPERTY,
    "spark.jobGroup.id",
    "spark.job.description",
    "spark.job.interruptOnCancel",
)
"""Spark local properties of the update's thread that its micro-batches run with."""
_STREAM_SETTINGS = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.streaming.numRecentProgressUpdates": "100000",
}
QUARANTINE_SUFFIX = "_quarantine"
UPDATE_COLUMN = "_update_id"
"""Quarantine tables: the update that dropped the row."""


@dataclass(frozen=True)
class LocalPipeline:
    """A pipeline as the local runner knows it (names already computed by brickops)."""

    name: str
    catalog: str
    schema: str
    sources: tuple[Path, ...]
    """.py / .ipynb (dlt or pyspark.pipelines) and .sql sources, loaded in this order."""
    configuration: Mapping[str, str]
    """The pipeline's `configuration`: Spark settings of the update (`meshops.quarantine`)."""
    state_dir: Path
    """The meshops state folder (`StatePaths.root`); the pipeline keeps
    `pipelines/<name>/` in it."""


def run_update(
    spark: SparkSession,
    pipeline: LocalPipeline,
    *,
    full_refresh: bool = False,
    console: Console | None = None,
) -> UpdateResult:
    """Run one update of `pipeline` on local `spark`; raises `PipelineError` (an expectation
    failing: `ExpectationViolation`) or `PipelineSourceError` when it fails."""
    from meshops.engine.view import quiet

    return _Update(spark, pipeline, full_refresh, console or quiet()).run()


# ---- the pipeline's state folder -----------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "pipeline"


@dataclass(frozen=True)
class PipelineState:
    """`<state_dir>/pipelines/<pipeline>/`: checkpoints, schemas, the tables it made, updates."""

    root: Path

    @classmethod
    def of(cls, pipeline: LocalPipeline) -> PipelineState:
        return cls(pipeline.state_dir / "pipelines" / _slug(pipeline.name))

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, flow: FlowDef) -> Path:
        return self.checkpoints / _slug(flow.name)

    def app_id(self, flow: FlowDef) -> str:
        """The flow's Delta transaction id: new with each new checkpoint (so a full refresh,
        which drops both, starts over), the same across the updates that share one."""
        path = self.checkpoints / f"{_slug(flow.name)}.appid"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"meshops-pipeline-{uuid.uuid4()}", encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    def once_done(self, flow: FlowDef) -> Path:
        return self.checkpoints / f"{_slug(flow.name)}.once"

    @property
    def tables_file(self) -> Path:
        return self.root / "tables.json"

    @property
    def updates_file(self) -> Path:
        return self.root / "updates.jsonl"

    def tables(self) -> dict[str, dict[str, Any]]:
        """Tables earlier updates made: name -> {kind, and for datasets the declaration
        (properties, comment, layout) and columns they were last written with}."""
        try:
            found = json.loads(self.tables_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(found, dict):
            return {}
        return {str(k): v for k, v in found.items() if isinstance(v, dict) and "kind" in v}

    def save_tables(self, tables: Mapping[str, dict[str, Any]]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.tables_file.write_text(json.dumps(dict(tables), indent=1), encoding="utf-8")

    @contextlib.contextmanager
    def locked(self, pipeline: str) -> Iterator[None]:
        """One update of a pipeline at a time (its checkpoints are not shareable)."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = (self.root / "update.lock").open("a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PipelineError(
                    f"pipeline {pipeline}: another update of it is running (lock {handle.name}); "
                    "wait for it to end"
                ) from None
            yield
        finally:
            handle.close()


# ---- one update ----------------------------------------------------------------------------


@dataclass
class _Tally:
    """What one flow did in this update."""

    rows: int = 0
    batches: int = 0
    outcomes: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, counts: Counts) -> None:
        self.rows += counts.output_rows
        self.batches += 1
        for outcome in counts.outcomes:
            found = self.outcomes.setdefault(outcome.expectation.name, [outcome.expectation, 0, 0])
            found[1] += outcome.passed
            found[2] += outcome.failed


class _Update:
    def __init__(
        self, spark: SparkSession, pipeline: LocalPipeline, full_refresh: bool, console: Console
    ) -> None:
        self.spark, self.pipeline, self.full_refresh = spark, pipeline, full_refresh
        self.console = console
        self.update_id = str(uuid.uuid4())
        self.state = PipelineState.of(pipeline)
        self.log = EventLog(
            pipeline.name,
            self.update_id,
            eventlog.table_name(pipeline.catalog, pipeline.schema, pipeline.name),
        )
        self.quarantine = (
            str(pipeline.configuration.get(QUARANTINE_SETTING, "")).strip().lower() == "true"
        )
        self.built: set[str] = set()
        self.building: list[Dataset] = []
        self.flows: list[FlowResult] = []
        self.checks: list[ExpectationResult] = []
        self.datasets: dict[str, DatasetResult] = {}
        self.tables: dict[str, dict[str, Any]] = {}

    # -- the whole update

    def run(self) -> UpdateResult:
        if sessions.mode(self.spark) != "local":
            raise PipelineError(
                f"pipeline {self.pipeline.name}: local updates run on the local Spark session; "
                "with Spark Connect or Databricks Connect, run the pipeline there"
            )
        with self.state.locked(self.pipeline.name):
            self.session = self._session()
            self.log.add(
                "create_update",
                f"Update {self.update_id[:6]} started by meshops (local run).",
                {"cause": "API_CALL", "full_refresh": self.full_refresh},
            )
            self.console.print(
                f"[bold]pipeline {escape(self.pipeline.name)}[/bold]: update "
                f"{self.update_id[:8]}" + (" (full refresh)" if self.full_refresh else "")
            )
            try:
                self._update()
            except BaseException as exc:
                self.log.add(
                    "update_progress",
                    f"Update {self.update_id[:6]} is FAILED.",
                    {"state": "FAILED"},
                    level="ERROR",
                    error=exc,
                )
                self._finish("FAILED", quiet=True)
                if isinstance(exc, MeshopsError) or not isinstance(exc, Exception):
                    raise
                raise PipelineError(
                    f"pipeline {self.pipeline.name}: update failed: {_reason(exc)}"
                ) from exc
            self.log.add(
                "update_progress",
                f"Update {self.update_id[:6]} is COMPLETED.",
                {"state": "COMPLETED"},
            )
            self._finish("COMPLETED", quiet=False)
        result = UpdateResult(
            pipeline=self.pipeline.name,
            update_id=self.update_id,
            full_refresh=self.full_refresh,
            datasets=tuple(self.datasets.values()),
            flows=tuple(self.flows),
            expectations=tuple(self.checks),
            event_log_table=self.log.table,
        )
        result.print(self.console)
        return result

    def _update(self) -> None:
        registry = LocalRegistry(self.session, self.pipeline.configuration)
        loader.load(registry, self.pipeline.sources, StatePaths(self.pipeline.state_dir))
        graph = registry.graph
        graph.validate()
        self.graph = graph
        self.tables = self.state.tables()
        self.resolver = Resolver(
            self.session,
            graph,
            self.pipeline.catalog,
            self.pipeline.schema,
            build=self.ensure,
        )
        if self.full_refresh:
            self._drop_everything(graph)
        self.log.add(
            "update_progress", f"Update {self.update_id[:6]} is RUNNING.", {"state": "RUNNING"}
        )
        for dataset in graph.datasets.values():
            self.ensure(dataset)

    def _session(self) -> SparkSession:
        """The update's own session: catalogs of `spark`, the pipeline's settings and schema."""
        session = self.spark.newSession()
        for key, value in self.spark.conf.getAll.items():
            if key.startswith("spark.sql.catalog."):
                session.conf.set(key, value)
        sessions.register_catalogs(session, [self.pipeline.catalog])
        # under the checkpoints: a full refresh infers the schemas again, as in Lakeflow
        schemas = self.state.checkpoints / ".autoloader_schemas"
        session.conf.set(autoloader.MANAGED_SCHEMAS, str(schemas))
        for key, value in self.pipeline.configuration.items():
            try:
                session.conf.set(str(key), str(value))
            except Exception as exc:
                self.console.print(
                    f"[yellow]warning:[/yellow] configuration {escape(str(key))} is not applied "
                    f"locally ({escape(_reason(exc))})"
                )
        target = f"{_q(self.pipeline.catalog)}.{_q(self.pipeline.schema)}"
        session.sql(f"CREATE SCHEMA IF NOT EXISTS {target}")
        session.catalog.setCurrentCatalog(self.pipeline.catalog)
        session.catalog.setCurrentDatabase(self.pipeline.schema)
        return session

    def _finish(self, state: str, *, quiet: bool) -> None:
        """Event log and records, also for a failed update (whose error must stay the one
        raised: a failure here is then only printed)."""
        try:
            self.state.save_tables(self.tables)
            with self.state.updates_file.open("a", encoding="utf-8") as out:
                out.write(
                    json.dumps(
                        {
                            "update_id": self.update_id,
                            "state": state,
                            "full_refresh": self.full_refresh,
                            "event_log": self.log.table,
                        }
                    )
                    + "\n"
                )
            self.log.write(self.session)
        except Exception as exc:
            if not quiet:
                raise
            self.console.print(
                f"[yellow]warning:[/yellow] the event log of this update was not written: "
                f"{escape(_reason(exc))}"
            )

    def _drop_everything(self, graph: Graph) -> None:
        """Full refresh: the pipeline's tables and checkpoints go; the event log stays."""
        from meshops.pipelines import cdc

        names = set(self.tables)
        for dataset in graph.tables():
            table = self.resolver.table_name(dataset)
            names.update((table, table + QUARANTINE_SUFFIX))
            if any(f.cdc is not None for f in graph.flows_into(dataset)):
                names.add(cdc.state_table(table))
        for table in sorted(names):
            self.session.sql(f"DROP TABLE IF EXISTS {table}")
        shutil.rmtree(self.state.checkpoints, ignore_errors=True)
        self.tables = {}
        self.console.print(f"  full refresh: dropped {len(names)} table(s) and the checkpoints")

    # -- datasets

    def ensure(self, dataset: Dataset) -> None:
        """Build `dataset` unless this update did; a dataset that needs itself is a cycle."""
        if dataset.key in self.built:
            return
        if dataset in self.building:
            path = [*self.building[self.building.index(dataset) :], dataset]
            raise PipelineError(
                "datasets read each other in a cycle: "
                + " -> ".join(d.name for d in path)
                + f" ({dataset.where}); a dataset cannot depend on itself"
            )
        self.building.append(dataset)
        try:
            if dataset.kind == "view":
                self._view(dataset)
            else:
                for flow in self.graph.flows_into(dataset):
                    self._flow(dataset, flow)
        finally:
            self.building.pop()
        self.built.add(dataset.key)

    def _view(self, dataset: Dataset) -> None:
        (flow,) = self.graph.flows_into(dataset)
        with self._conf({**dataset.spark_conf, **flow.spark_conf}):
            frame = self._evaluate(dataset, flow)
            rules = [*dataset.expectations, *flow.expectations]
            tally = _Tally()
            if rules:
                if frame.isStreaming:
                    raise PipelineSourceError(
                        f"{dataset.where}: view '{dataset.name}' streams and has expectations, "
                        "which run on stored rows locally: put them on the table that reads it"
                    )
                frame, counts = expectations.check(
                    frame, rules, dataset=dataset.name, flow=flow.name
                )
                tally.add(counts)
            frame.createOrReplaceTempView(dataset.name)
            self.resolver.views[dataset.key] = frame
        self._flow_done(dataset, flow, "view", tally, rows=None)
        self.datasets[dataset.key] = DatasetResult(dataset.name, "view", None, None)

    def _flow(self, dataset: Dataset, flow: FlowDef) -> None:
        with self._conf({**dataset.spark_conf, **flow.spark_conf}):
            try:
                if flow.cdc is not None:
                    mode, tally = "cdc", self._cdc(dataset, flow)
                elif flow.once and self.state.once_done(flow).is_file():
                    mode, tally = "skipped", _Tally()
                else:
                    frame = self._evaluate(dataset, flow)
                    if frame.isStreaming:
                        mode, tally = "append", self._stream(dataset, flow, frame)
                    elif flow.once:
                        mode, tally = "once", self._once(dataset, flow, frame)
                    else:
                        mode, tally = "complete", self._materialize(dataset, flow, frame)
            except BaseException as exc:
                self.log.add(
                    "flow_progress",
                    f"Flow '{flow.name}' has FAILED.",
                    {"status": "FAILED"},
                    level="ERROR",
                    dataset=dataset.name,
                    flow=flow.name,
                    error=exc,
                )
                self.console.print(f"  [red]✗[/red] {escape(dataset.name)} ({escape(flow.name)})")
                if isinstance(exc, MeshopsError) or not isinstance(exc, Exception):
                    raise
                raise PipelineError(
                    f"{flow.where}: flow '{flow.name}' into '{dataset.name}' failed: {_reason(exc)}"
                ) from exc
        self._flow_done(dataset, flow, mode, tally, rows=tally.rows)

    def _evaluate(self, dataset: Dataset, flow: FlowDef) -> DataFrame:
        """The flow's DataFrame; datasets it reads are built first (see `reads`)."""
        from pyspark.sql import DataFrame

        assert flow.query is not None
        with self.resolver.evaluating():
            try:
                frame = flow.query()
            except MeshopsError:
                raise
            except Exception as exc:
                raise PipelineError(
                    f"{flow.where}: the query of '{flow.name}' failed: {_reason(exc)}"
                ) from exc
        if not isinstance(frame, DataFrame):
            raise PipelineSourceError(
                f"{flow.where}: the query function of '{flow.name}' returned "
                f"{type(frame).__name__}; it must return a Spark DataFrame"
            )
        return _aligned(self.session, frame, dataset)

    # -- materialized views

    def _materialize(self, dataset: Dataset, flow: FlowDef, frame: DataFrame) -> _Tally:
        if dataset.kind == "streaming_table":
            raise PipelineSourceError(
                f"{flow.where}: streaming table '{dataset.name}': the query of flow "
                f"'{flow.name}' is not a stream; read with spark.readStream, dlt.read_stream or "
                "STREAM(...), or declare a materialized view"
            )
        table = self.resolver.table_name(dataset)
        self._claim(dataset, table, "materialized_view")
        guarded = self._guard(frame, dataset, flow)
        self._write(guarded, lambda kept: self._replace(kept, table, dataset))
        if guarded.expectations:
            counts = guarded.counts()
        else:  # Delta counts a table's rows from its log: no second run of the query
            rows = self.session.table(table).count()
            counts = Counts(rows, rows, [])
        quarantine = None
        if self.quarantine and guarded.dropped is not None:
            quarantine = self._write_quarantine(table, guarded.dropped, None)
        tally = _Tally()
        tally.add(counts)
        self.datasets[dataset.key] = DatasetResult(
            dataset.name, "materialized_view", table, tally.rows, quarantine
        )
        return tally

    def _replace(self, frame: DataFrame, table: str, dataset: Dataset) -> None:
        """A materialized view's new contents, in one commit. The table stays the same Delta
        table (overwritten) unless its columns or layout changed since the last update,
        which replaces it (a new table id)."""
        from pyspark.sql import functions as F

        record = self.tables[table]
        columns, last = _columns(frame.schema), dict(record)
        record.update(columns=columns, declared=_declared(dataset))
        if not self.session.catalog.tableExists(table):
            _table_writer(frame, table, dataset).create()
        elif (
            last.get("columns") != columns
            or (last.get("declared") or {}).get("layout") != record["declared"]["layout"]
        ):
            _table_writer(frame, table, dataset).createOrReplace()
        else:
            frame.writeTo(table).overwrite(F.lit(True))
            if last.get("declared") != record["declared"]:
                self._sync_properties(dataset, table)

    # -- streaming tables

    def _stream(self, dataset: Dataset, flow: FlowDef, frame: DataFrame) -> _Tally:
        if dataset.kind == "materialized_view":
            raise PipelineSourceError(
                f"{flow.where}: materialized view '{dataset.name}': its query is a stream; "
                "read with spark.read / dlt.read, or declare a streaming table"
            )
        table = self.resolver.table_name(dataset)
        self._claim(dataset, table, "streaming_table")
        self._create_table(dataset, table, frame.schema)
        rules = [*dataset.expectations, *flow.expectations]
        app_id = self.state.app_id(flow)
        tally = _Tally()
        quarantine = [False]
        uncounted: list[int] = []

        def write(batch: DataFrame, batch_id: int) -> None:
            done = _committed(self.session, table, app_id)
            if done is not None and done >= batch_id:
                # written by an update that stopped before its checkpoint recorded it: the
                # replay is skipped (Delta would skip the write too), and not counted twice
                return
            guarded = self._guard(batch, dataset, flow, rules)
            self._write(guarded, lambda kept: _append(kept, table, app_id, batch_id))
            if self.quarantine and guarded.dropped is not None:
                quarantine[0] = True
                self._write_quarantine(table, guarded.dropped, (app_id, batch_id))
            if rules:
                tally.add(guarded.counts())
            else:  # every input row was written: the stream's progress has the count
                uncounted.append(batch_id)

        progress = self._run_stream(dataset, flow, frame, write)
        for batch_id in uncounted:
            tally.add(Counts(progress[batch_id], progress[batch_id], []))
        self._add_rows(dataset, "streaming_table", table, tally, quarantine[0])
        return tally

    def _once(self, dataset: Dataset, flow: FlowDef, frame: DataFrame) -> _Tally:
        """A once flow: its batch query appended one time (idempotently), until a full refresh."""
        table = self.resolver.table_name(dataset)
        self._claim(dataset, table, "streaming_table")
        self._create_table(dataset, table, frame.schema)
        guarded = self._guard(frame, dataset, flow)
        app_id = self.state.app_id(flow)
        self._write(guarded, lambda kept: _append(kept, table, app_id, 0))
        tally = _Tally()
        tally.add(guarded.counts())
        self.state.once_done(flow).write_text(self.update_id, encoding="utf-8")
        self._add_rows(dataset, "streaming_table", table, tally, False)
        return tally

    def _cdc(self, dataset: Dataset, flow: FlowDef) -> _Tally:
        from meshops.pipelines import cdc

        args = flow.cdc
        assert args is not None
        table = self.resolver.table_name(dataset)
        self._claim(dataset, table, "streaming_table")
        self.tables[cdc.state_table(table)] = {"kind": "cdc_state"}
        with self.resolver.evaluating():
            source = self.resolver.read_stream(args.source)
        if args.where is not None:
            source = source.filter(args.where)
        spec = cdc.CdcSpec(
            target=table,
            source=args.source,
            keys=list(args.keys),
            sequence_by=args.sequence_by,
            stored_as_scd_type=args.stored_as_scd_type,
            ignore_null_updates=args.ignore_null_updates,
            apply_as_deletes=args.apply_as_deletes,
            apply_as_truncates=args.apply_as_truncates,
            column_list=None if args.column_list is None else list(args.column_list),
            except_column_list=(
                None if args.except_column_list is None else list(args.except_column_list)
            ),
            track_history_column_list=(
                None
                if args.track_history_column_list is None
                else list(args.track_history_column_list)
            ),
            track_history_except_column_list=(
                None
                if args.track_history_except_column_list is None
                else list(args.track_history_except_column_list)
            ),
        )
        if not self.session.catalog.tableExists(table):
            cdc.reset_state(self.session, table)  # a new target starts from no state
            self._create_table(dataset, table, cdc.target_schema(source.schema, spec))
        tally = _Tally()

        def merge(batch: DataFrame, batch_id: int) -> None:
            tally.rows += cdc.apply_cdc_batch(batch.sparkSession, batch, table, spec)
            tally.batches += 1

        self._run_stream(dataset, flow, source, merge)
        self._add_rows(dataset, "streaming_table", table, tally, False)
        return tally

    def _run_stream(
        self, dataset: Dataset, flow: FlowDef, frame: DataFrame, handler: Any
    ) -> dict[int, int]:
        """Run a flow's stream over what is new (availableNow), each batch through `handler`;
        the rows each batch read (batch id -> rows)."""
        failures: list[BaseException] = []
        context = self.session.sparkContext
        inherited = {key: context.getLocalProperty(key) for key in _INHERITED}

        def batch(batch_frame: DataFrame, batch_id: int) -> None:
            # py4j calls this from a thread of its own: give it the update thread's task,
            # read-only catalogs and job group, so the batch's writes are recorded (and
            # refused, and cancelled) as the task's
            saved = {key: context.getLocalProperty(key) for key in _INHERITED}
            _set_properties(context, inherited)
            try:
                handler(batch_frame, batch_id)
            except BaseException as exc:
                failures.append(exc)
                raise
            finally:
                _set_properties(context, saved)

        checkpoint = self.state.checkpoint(flow)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        try:
            # adaptive execution does not apply to streams (Spark would warn at each start);
            # the progress of every batch is kept for the counts
            with self._conf(_STREAM_SETTINGS):
                query = self._start(frame, batch, checkpoint, flow)
        except Exception as exc:
            raise PipelineError(
                f"{flow.where}: flow '{flow.name}' into '{dataset.name}' could not start: "
                f"{_reason(exc)}; if its query changed in a way its checkpoint ({checkpoint}) "
                "cannot follow, run a full refresh"
            ) from exc
        try:
            query.awaitTermination()
        except Exception as exc:
            if failures:
                raise failures[-1] from None
            raise PipelineError(
                f"{flow.where}: flow '{flow.name}' into '{dataset.name}' failed: {_reason(exc)}"
            ) from exc
        finally:
            if query.isActive:
                query.stop()
        return {int(p["batchId"]): int(p["numInputRows"]) for p in query.recentProgress}

    def _start(self, frame: DataFrame, batch: Any, checkpoint: Path, flow: FlowDef) -> Any:
        return (
            frame.writeStream.foreachBatch(batch)
            .trigger(availableNow=True)
            .option("checkpointLocation", str(checkpoint))
            .queryName(f"{_slug(self.pipeline.name)}.{_slug(flow.name)}.{self.update_id[:8]}")
            .start()
        )

    # -- helpers

    def _guard(
        self,
        frame: DataFrame,
        dataset: Dataset,
        flow: FlowDef,
        rules: list[Expectation] | None = None,
    ) -> Guarded:
        found = [*dataset.expectations, *flow.expectations] if rules is None else rules
        return expectations.guard(frame, found, dataset=dataset.name, flow=flow.name)

    @staticmethod
    def _write(guarded: Guarded, write: Any) -> None:
        """Run the write of the guarded rows; a failing `fail` expectation is raised as such."""
        try:
            write(guarded.kept)
        except Exception as exc:
            violation = guarded.violation(exc)
            if violation is not None:
                raise violation from None
            raise

    def _write_quarantine(self, table: str, dropped: DataFrame, app: tuple[str, int] | None) -> str:
        """Dropped rows into `<table>_quarantine`: replaced with each materialized view,
        appended once per micro-batch for a streaming table."""
        from pyspark.sql import functions as F

        name = table + QUARANTINE_SUFFIX
        self.tables[name] = {"kind": "quarantine"}
        rows = dropped.withColumn(UPDATE_COLUMN, F.lit(self.update_id))
        if app is None:
            rows.writeTo(name).using("delta").createOrReplace()
        else:
            _append(rows, name, app[0] + ":quarantine", app[1])
        return name

    def _claim(self, dataset: Dataset, table: str, kind: str) -> None:
        """Record that `table` is this pipeline's, as `kind`; a dataset that changed kind
        (materialized view <-> streaming table) starts again from nothing."""
        known = (self.tables.get(table) or {}).get("kind")
        if known is not None and known != kind:
            self.session.sql(f"DROP TABLE IF EXISTS {table}")
            self.session.sql(f"DROP TABLE IF EXISTS {table}{QUARANTINE_SUFFIX}")
            for flow in self.graph.flows_into(dataset):
                shutil.rmtree(self.state.checkpoint(flow), ignore_errors=True)
                self.state.checkpoint(flow).with_suffix(".appid").unlink(missing_ok=True)
            self.console.print(
                f"  {escape(dataset.name)} is now a {kind.replace('_', ' ')} (was a "
                f"{known.replace('_', ' ')}): rebuilt from scratch"
            )
        if known != kind:
            self.tables[table] = {"kind": kind}

    def _create_table(self, dataset: Dataset, table: str, schema: StructType) -> None:
        """A streaming table's Delta table, empty, with its properties (once); properties and
        comment follow the source when it declares others later."""
        record = self.tables[table]
        declared, last = _declared(dataset), record.get("declared")
        record["declared"] = declared
        if not self.session.catalog.tableExists(table):
            empty = self.session.createDataFrame([], schema)
            _table_writer(empty, table, dataset).create()
        elif last != declared:
            self._sync_properties(dataset, table)

    def _sync_properties(self, dataset: Dataset, table: str) -> None:
        """Table properties and comment as the source declares them now."""
        if dataset.table_properties:
            pairs = ", ".join(
                f"{_literal(k)} = {_literal(v)}" for k, v in dataset.table_properties.items()
            )
            self.session.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({pairs})")
        if dataset.comment is not None:
            self.session.sql(f"COMMENT ON TABLE {table} IS {_literal(dataset.comment)}")

    def _add_rows(
        self, dataset: Dataset, kind: str, table: str, tally: _Tally, quarantined: bool
    ) -> None:
        before = self.datasets.get(dataset.key)
        rows = (before.rows_written or 0) if before is not None else 0
        quarantine = table + QUARANTINE_SUFFIX if quarantined else None
        if before is not None and before.quarantine_table:
            quarantine = before.quarantine_table
        self.datasets[dataset.key] = DatasetResult(
            dataset.name, kind, table, rows + tally.rows, quarantine
        )

    def _flow_done(
        self, dataset: Dataset, flow: FlowDef, mode: str, tally: _Tally, rows: int | None
    ) -> None:
        checks = []
        for expectation, passed, failed in tally.outcomes.values():
            checks.append(
                {
                    "name": expectation.name,
                    "dataset": dataset.name,
                    "passed_records": passed,
                    "failed_records": failed,
                }
            )
            self.checks.append(
                ExpectationResult(
                    dataset.name, flow.name, expectation.name, expectation.action, passed, failed
                )
            )
        dropped = sum(
            failed
            for expectation, _passed, failed in tally.outcomes.values()
            if expectation.action == "drop"
        )
        details: dict[str, Any] = {"status": "COMPLETED" if mode != "skipped" else "SKIPPED"}
        if rows is not None:
            details["metrics"] = {"num_output_rows": rows}
        if checks:
            details["data_quality"] = {"dropped_records": dropped, "expectations": checks}
        self.log.add(
            "flow_progress",
            f"Flow '{flow.name}' has {details['status']}.",
            details,
            dataset=dataset.name,
            flow=flow.name,
        )
        self.flows.append(FlowResult(flow.name, dataset.name, mode, rows, tally.batches))
        shown = "temporary view" if rows is None else f"{mode}, {rows} row(s)"
        self.console.print(
            f"  [green]✓[/green] {escape(dataset.name)}"
            + (f" ({escape(flow.name)})" if flow.name.lower() != dataset.key else "")
            + f": {shown}"
            + (f", {dropped} dropped" if dropped else "")
        )

    @contextlib.contextmanager
    def _conf(self, settings: Mapping[str, str]) -> Iterator[None]:
        """Spark settings of a flow while it runs (its stream takes them at start)."""
        saved = {key: self.session.conf.get(key, None) for key in settings}
        for key, value in settings.items():
            self.session.conf.set(key, value)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    self.session.conf.unset(key)
                else:
                    self.session.conf.set(key, old)


def _aligned(spark: SparkSession, frame: DataFrame, dataset: Dataset) -> DataFrame:
    """The query's columns cast to the dataset's declared schema, if it declares one."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    if dataset.schema is None:
        return frame
    schema = (
        dataset.schema
        if isinstance(dataset.schema, StructType)
        else sqlsource.parse_schema(spark, dataset.schema, dataset.where)
    )
    have = {c.lower(): c for c in frame.columns}
    missing = [f.name for f in schema.fields if f.name.lower() not in have]
    extra = [c for c in frame.columns if c.lower() not in {f.name.lower() for f in schema.fields}]
    if missing or extra:
        raise PipelineSourceError(
            f"{dataset.where}: dataset '{dataset.name}' declares the columns "
            f"{', '.join(schema.names)}; its query "
            + (f"lacks {', '.join(missing)}" if missing else "")
            + (" and " if missing and extra else "")
            + (f"also returns {', '.join(extra)}" if extra else "")
        )
    return frame.select(
        *(
            F.col(f"`{have[f.name.lower()]}`").cast(f.dataType).alias(f.name, metadata=f.metadata)
            for f in schema.fields
        )
    )


def _columns(schema: StructType) -> list[list[str]]:
    return [[f.name.lower(), f.dataType.simpleString()] for f in schema.fields]


def _declared(dataset: Dataset) -> dict[str, Any]:
    """What the source declares about a dataset's table (kept to notice changes)."""
    return {
        "properties": dict(sorted(dataset.table_properties.items())),
        "comment": dataset.comment,
        "layout": [list(dataset.partition_cols), list(dataset.cluster_by)],
    }


def _table_writer(frame: DataFrame, table: str, dataset: Dataset) -> Any:
    from pyspark.sql import functions as F

    writer = frame.writeTo(table).using("delta")
    for key, value in dataset.table_properties.items():
        writer = writer.tableProperty(key, value)
    if dataset.comment is not None:
        writer = writer.tableProperty("comment", dataset.comment)
    if dataset.partition_cols:
        writer = writer.partitionedBy(*(F.col(c) for c in dataset.partition_cols))
    if dataset.cluster_by:
        writer = writer.clusterBy(*dataset.cluster_by)
    return writer


def _append(frame: DataFrame, table: str, app_id: str, version: int) -> None:
    """Append once: Delta skips a write whose (txnAppId, txnVersion) it already committed."""
    (
        frame.write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")
        .option("txnAppId", app_id)
        .option("txnVersion", version)
        .saveAsTable(table)
    )


def _set_properties(context: Any, values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        context.setLocalProperty(key, value)


def _committed(spark: SparkSession, table: str, app_id: str) -> int | None:
    """The last batch id `app_id` committed to Delta table `table` (None: none, or Delta's
    internals moved; then the write's own txnVersion check still skips a replay)."""
    from delta.tables import DeltaTable

    try:
        log = DeltaTable.forName(spark, table)._jdt.deltaLog()
        empty = spark.sparkContext._jvm.scala.Option.empty()  # type: ignore[union-attr]
        found = log.update(False, empty, empty).transactions().get(app_id)
        return int(found.get()) if found.isDefined() else None
    except Exception:
        return None


def _q(part: str) -> str:
    return f"`{part.replace('`', '``')}`"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _reason(exc: BaseException) -> str:
    """One line: a Java error's Java cause, else the exception's first line."""
    if any(k.__name__ == "Py4JJavaError" for k in type(exc).__mro__):
        from meshops.engine.unity import java_cause

        return java_cause(exc)
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
