"""One Spark session per process, shared by every task the process runs.

Three kinds, chosen at the first call:

- **local**: `local[*]` with a Derby-backed Hive metastore under the state folder, so tables
  outlive the process; Delta Lake as the session catalog and the default table format, as on
  Databricks; and the meshops catalog plugin registered once per catalog name, so
  `catalog.schema.table` resolves as on Unity Catalog (schema `s` of catalog `c` is metastore
  database `c__s`). Writes through the plugin are recorded per task (`task_tag`), and a flow
  task's writes to the shared input catalogs (`external_catalogs`, e.g. `samples`) fail: flows
  read them, tools load them (`shared_inputs_writable`).
- **warm**: what would be local, served by the warm engine of the same state folder and
  settings when one is up (`engine.warm`, `meshops engine start`): a Spark Connect session
  of its own on that server, with the same catalogs, volumes and Delta. Its per-thread
  settings travel as Spark Connect session tags (`task_tag`), and writes are read back from
  the server (`drain_writes`).
- **connect**: Spark Connect when `SPARK_REMOTE` is set; the server owns the catalogs.
- **databricks-connect**: when a workspace is configured and `databricks-connect` is
  installed; the workspace's Unity Catalog owns the catalogs.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import importlib
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from meshops.databricks_auth import workspace_configured
from meshops.engine.jars import delta_jars
from meshops.engine.jvm import JAVA_SOURCES, java_tool, plugin_jar
from meshops.errors import InvalidInput, MeshopsError
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

Mode = Literal["local", "warm", "connect", "databricks-connect"]

CATALOG_CLASS = "meshops.spark.UnityCatalog"
VOLUMES_FS_CLASS = "meshops.spark.VolumesFileSystem"
DBFS_FS_CLASS = "meshops.spark.DbfsFileSystem"
LOG_CONFIG = JAVA_SOURCES / "log4j2.properties"
TASK_PROPERTY = "meshops.task"
"""Spark local property naming the task a thread runs; writes are recorded under it."""
READ_ONLY_PROPERTY = "meshops.readOnlyCatalogs"
"""Spark local property: catalogs (comma-separated) the thread's writes must not touch."""
SHARED_INPUTS_EXTENSION = "meshops.spark.SharedInputsExtension"
"""Analyzer check refusing writes to the thread's read-only catalogs (SQL, DataFrame, Delta)."""
DEPLOYMENT_FILE = "deployment.yml"

UNITY_SEPARATOR = "__"
"""Schema `s` of catalog `c` is metastore database `c__s` (UnityCatalog.SEPARATOR)."""
_CATALOG_PREFIX = "spark.sql.catalog."
_CATALOG_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_RESERVED_CATALOGS = frozenset({"spark_catalog", "system", "session"})


@dataclass(frozen=True)
class SessionOptions:
    """What the one session of this process is built from.

    `mode` "auto" picks connect when `SPARK_REMOTE` is set, databricks-connect when a
    workspace is configured and `databricks-connect` is installed, else local. Tests pass
    "local" so a developer's workspace settings never send them to a cluster. Local is served
    by the warm engine of `state` when one is up with these settings (`pick_mode`).
    """

    state: StatePaths
    catalogs: tuple[str, ...] = ()
    app_name: str = "meshops"
    shuffle_partitions: int = 4
    extra_conf: Mapping[str, str] = field(default_factory=dict)
    mode: Literal["auto", "local", "warm", "connect", "databricks-connect"] = "auto"
    jar_cache: Path | None = None
    """Where the plugin jar is cached; default `state.jars`. Tests share one across state dirs."""
    delta: bool = True
    """Delta Lake as on Databricks; False: plain Spark (parquet), to measure what Delta costs."""
    long_lived: bool = False
    """A JVM that serves many runs (the warm engine) compiles hot code fully (C2); one that
    ends with its process stops at the quick compiler (C1): a flow run on a laptop's sample
    data then takes about half the CPU, which the full compiler spent before it paid off."""


@dataclass(frozen=True)
class _Running:
    spark: SparkSession
    mode: Mode
    options: SessionOptions


_lock = threading.RLock()
_running: _Running | None = None
_exit_hook = False
_JVM_EXIT_SECONDS = 60
_LOCK_GRACE_SECONDS = 5
STATE_LOCK = "session.lock"
"""Lock file in the state dir: held (flock) by the one process whose local session uses it."""
_held: IO[str] | None = None
_holder = "a meshops process"


def get_spark(options: SessionOptions) -> SparkSession:
    """The session of this process, started at the first call with `options`.

    Later calls return it and register any new `options.catalogs`; a later call with a
    different local state folder is an error, since the metastore cannot move.
    """
    global _running
    with _lock:
        running = _running
        if running is not None and _alive(running.spark):
            if (
                running.mode in ("local", "warm")
                and running.options.state.root.resolve() != options.state.root.resolve()
            ):
                raise MeshopsError(
                    f"a {running.mode} Spark session already runs with state "
                    f"{running.options.state.root}; "
                    f"one session per process: call meshops.engine.session.stop() first"
                )
            register_catalogs(running.spark, options.catalogs)
            return running.spark
        chosen, url = pick_mode(options)
        if chosen == "local":
            spark = _start_local(options)
        elif chosen == "warm":
            spark = _start_warm(options, url)
        elif chosen == "connect":
            spark = _start_connect(options)
        else:
            spark = _start_databricks(options)
        _running = _Running(spark, chosen, options)
        if chosen == "warm":
            from meshops.engine import autoloader, unity

            unity.install(spark, options.state)
            autoloader.install()
        return spark


def active_options() -> SessionOptions | None:
    """Options of the running session, if any (fixtures reuse a session another one started)."""
    with _lock:
        running = _running
        return running.options if running is not None and _alive(running.spark) else None


def stop() -> None:
    """Stop the session of this process; the next `get_spark` starts a new one."""
    global _running
    with _lock:
        running, _running = _running, None
        if running is None:
            return
        if running.mode == "warm":
            _warm_stop(running.spark)
            return
        try:
            if running.mode == "local" and _alive(running.spark):
                # cached file systems keep the volume root of this session
                _jvm(running.spark).org.apache.hadoop.fs.FileSystem.closeAll()
            running.spark.stop()
        finally:
            if running.mode == "local":
                _release_state()


def mode(spark: SparkSession) -> Mode:
    """Which kind of session `spark` is."""
    running = _running
    if running is not None and running.spark is spark:
        return running.mode
    return "local" if hasattr(spark, "_jsparkSession") else "connect"


def owns_catalogs(spark: SparkSession) -> bool:
    """Whether meshops' catalog plugin serves `spark` (local, or warm on the same plugin): its
    writes are recorded, shared inputs refused and Unity Catalog SQL answered as locally."""
    return mode(spark) in ("local", "warm")


def register_catalogs(spark: SparkSession, names: Iterable[str]) -> None:
    """Make each name a catalog of the local session (idempotent); remote sessions own theirs."""
    wanted = [_valid_catalog(name) for name in names]
    if not owns_catalogs(spark):
        return
    for name in wanted:
        key = _CATALOG_PREFIX + name
        if spark.conf.get(key, None) is None:
            spark.conf.set(key, CATALOG_CLASS)


def known_catalogs(spark: SparkSession) -> set[str]:
    """Catalogs a three-level name may use: registered ones and those with schemas stored."""
    if not owns_catalogs(spark):
        return {c.name for c in spark.catalog.listCatalogs()}
    registered = {
        key[len(_CATALOG_PREFIX) :]
        for key, value in spark.conf.getAll.items()
        if key.startswith(_CATALOG_PREFIX)
        and "." not in key[len(_CATALOG_PREFIX) :]
        and value == CATALOG_CLASS
    }
    return registered | set(_metastore_catalogs(spark))


def drain_writes(spark: SparkSession, task: str) -> list[str]:
    """Tables (`catalog.schema.table`) written under `task`, first write first; then forgotten.

    Only writes through three-level names on a local or warm session are recorded (the warm
    engine records them in its JVM; they are read from there); other remote sessions and
    two-level (`spark_catalog`) names record nothing.
    """
    if mode(spark) == "warm":
        lines = _server_call(spark, "meshops.spark.TaskWrites", "drainLines", task)
        return [line for line in lines.split("\n") if line]
    if mode(spark) != "local":
        return []
    return list(_jvm(spark).meshops.spark.TaskWrites.drain(task))


def drain_reads(spark: SparkSession, task: str) -> list[str]:
    """Tables (`catalog.schema.table`) read under `task`, first read first; then forgotten.

    Recorded where `drain_writes` records writes: the catalog plugin's lookups of tables and
    views of three-level names, local or warm (`TaskReads.java` says what is not seen).
    """
    if mode(spark) == "warm":
        lines = _server_call(spark, "meshops.spark.TaskReads", "drainLines", task)
        return [line for line in lines.split("\n") if line]
    if mode(spark) != "local":
        return []
    return list(_jvm(spark).meshops.spark.TaskReads.drain(task))


@contextlib.contextmanager
def task_tag(
    spark: SparkSession, task: str, *, read_only: Iterable[str] | None = None
) -> Iterator[None]:
    """Record the writes this thread makes inside the block under `task`; refuse its writes to
    the `read_only` catalogs.

    `read_only` defaults to `flow_shared_inputs()`: in a flow run, whose tasks run in their
    flow's folder, the `external_catalogs` of the platform config; elsewhere none. A refused
    write (SQL, DataFrame writers, Delta's API, files in the catalog's volumes) fails with one
    line naming the catalog, before it changes anything.
    """
    if not owns_catalogs(spark):
        yield
        return
    catalogs = flow_shared_inputs() if read_only is None else tuple(read_only)
    with _thread_properties(
        spark, {TASK_PROPERTY: task, READ_ONLY_PROPERTY: ",".join(sorted(set(catalogs))) or None}
    ):
        yield


def flow_shared_inputs(folder: Path | None = None) -> tuple[str, ...]:
    """The shared input catalogs a flow in `folder` (default: the working directory) reads.

    A flow's tasks run in its folder (the one holding its `deployment.yml`), as in a
    Databricks Git folder; brickops finds its config from there too. The catalogs are the
    `external_catalogs` of that repository's `.brickopscfg/config.yml`. Outside a flow folder
    (tests, tools) there are none.
    """
    from meshops import config
    from meshops.context import find_repo_root

    here = (folder or Path.cwd()).resolve()
    if not (here / DEPLOYMENT_FILE).is_file():
        return ()
    try:
        root = find_repo_root(here)
    except InvalidInput:
        return ()
    return tuple(config.load(root).settings.external_catalogs)


def read_only_catalogs(spark: SparkSession) -> frozenset[str]:
    """Catalogs this thread must not write (inside a flow task: the shared input catalogs)."""
    if mode(spark) == "warm":
        value = _tag_values(spark).get(READ_ONLY_PROPERTY, "").replace(_TAG_LIST, ",")
    elif mode(spark) == "local":
        value = spark.sparkContext.getLocalProperty(READ_ONLY_PROPERTY) or ""
    else:
        return frozenset()
    return frozenset(part for part in value.split(",") if part)


def shared_input_message(spark: SparkSession, catalog: str) -> str:
    """The one line a write to the shared input catalog `catalog` fails with."""
    if mode(spark) == "warm":
        return _server_call(spark, "meshops.spark.SharedInputs", "message", catalog)
    return str(_jvm(spark).meshops.spark.SharedInputs.message(catalog))


@contextlib.contextmanager
def shared_inputs_writable(spark: SparkSession) -> Iterator[None]:
    """Let this thread write the shared input catalogs inside the block, as tools that load
    sample data do (`tools/taxigen.py`); other threads, such as running flow tasks, still
    cannot. Outside a flow task they are writable anyway: the block says so explicitly.
    """
    if not owns_catalogs(spark):
        yield
        return
    with _thread_properties(spark, {READ_ONLY_PROPERTY: None}):
        yield


@contextlib.contextmanager
def _thread_properties(spark: SparkSession, values: Mapping[str, str | None]) -> Iterator[None]:
    """meshops' per-thread settings for the block: Spark local properties of a local session;
    on the warm engine, whose client cannot set those, Spark Connect session tags `key=value`
    (thread-local in the client, job tags of the thread's operations on the server, where
    the plugin reads them: ThreadProperties.java)."""
    if mode(spark) == "local":
        with _local_properties(spark, values):
            yield
        return
    with _active_in_thread(spark), _session_tags(spark, values):
        yield


@contextlib.contextmanager
def _active_in_thread(spark: SparkSession) -> Iterator[None]:
    """`spark` as this thread's active session for the block, as the one SparkContext is for
    every thread of a local session: pyspark's Connect client keeps the active session per
    thread, and code in a task's thread (`StructType.toDDL()`, `SparkSession.active()`)
    looks it up. (pyspark is pinned: its thread-local is the one place to set it.)"""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    local = ConnectSession._active_session
    previous = getattr(local, "session", None)
    local.session = spark
    try:
        yield
    finally:
        local.session = previous


@contextlib.contextmanager
def _session_tags(spark: SparkSession, values: Mapping[str, str | None]) -> Iterator[None]:
    """`key=value` session tags of this thread for the block; earlier ones of the same keys
    taken away meanwhile."""
    previous = {tag for tag in spark.getTags() if tag.partition("=")[0] in values}
    added = {f"{key}={value.replace(',', _TAG_LIST)}" for key, value in values.items() if value}
    for tag in previous - added:
        spark.removeTag(tag)
    for tag in added - previous:
        spark.addTag(tag)
    try:
        yield
    finally:
        for tag in added - previous:
            spark.removeTag(tag)
        for tag in previous - added:
            spark.addTag(tag)


_TAG_LIST = ";"
"""Separates the items of a list in a session tag, which cannot hold a comma."""


def _tag_values(spark: SparkSession) -> dict[str, str]:
    """meshops' settings of this thread on a warm session, from its session tags."""
    return {key: value for key, _, value in (t.partition("=") for t in spark.getTags()) if value}


def _server_call(spark: SparkSession, cls: str, method: str, argument: str) -> str:
    """A static method (String -> String) of the meshops plugin run in the warm engine's JVM,
    with SQL's `reflect`: what py4j does for a local session."""
    from pyspark.sql import functions

    call = functions.reflect(*(functions.lit(part) for part in (cls, method, argument)))
    row = spark.range(1).select(call).first()
    return str(row[0]) if row is not None and row[0] is not None else ""


@contextlib.contextmanager
def _local_properties(spark: SparkSession, values: Mapping[str, str | None]) -> Iterator[None]:
    """Spark local properties of this thread set (None: removed) for the block, then restored."""
    context = spark.sparkContext
    previous = {key: context.getLocalProperty(key) for key in values}
    for key, value in values.items():
        context.setLocalProperty(key, value)  # type: ignore[arg-type]
    try:
        yield
    finally:
        for key, value in previous.items():
            context.setLocalProperty(key, value)  # type: ignore[arg-type]


# ---- choosing ------------------------------------------------------------------------------


def _choose_mode(requested: str) -> Mode:
    remote = os.environ.get("SPARK_REMOTE")
    if requested == "local":
        if remote:
            raise MeshopsError(f"SPARK_REMOTE={remote} is set: unset it to run Spark locally")
        return "local"
    if requested == "connect":
        if not remote:
            raise MeshopsError("set SPARK_REMOTE (e.g. sc://localhost:15002) to use Spark Connect")
        return "connect"
    if requested == "databricks-connect":
        if not _has_databricks_connect():
            raise MeshopsError(
                "databricks-connect is not installed: pip install databricks-connect"
            )
        return "databricks-connect"
    if remote:
        return "connect"
    if workspace_configured() and _has_databricks_connect():
        return "databricks-connect"
    return "local"


def pick_mode(options: SessionOptions) -> tuple[Mode, str]:
    """The kind of session `options` get, and for "warm" the server's URL.

    Where the session would be local ("local", or "auto" on a machine without SPARK_REMOTE or
    a workspace), it is warm when the warm engine of `options.state` is up with the same
    settings (`engine.warm.find`): the engine holds that state folder, and it is this
    machine's Spark all the same. "warm" requires the engine. A stale engine record counts
    as none, so the embedded session starts as before.
    """
    from meshops.engine import warm

    if options.mode == "warm":
        engine = warm.find(options)
        if engine is None:
            raise MeshopsError(
                f"no warm engine is up for {options.state.root}: `meshops engine start` it"
            )
        return "warm", engine.url
    chosen = _choose_mode(options.mode)
    if chosen == "local":
        engine = warm.find(options)
        if engine is not None:
            return "warm", engine.url
    return chosen, ""


def _has_databricks_connect() -> bool:
    try:
        return importlib.util.find_spec("databricks.connect") is not None
    except ModuleNotFoundError:
        return False


# ---- starting ------------------------------------------------------------------------------


def _start_connect(options: SessionOptions) -> SparkSession:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(options.app_name)
    for key, value in options.extra_conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _start_warm(options: SessionOptions, url: str) -> SparkSession:
    """A Spark Connect session of its own on the warm engine, set up as a local session is:
    the catalogs of `options` and those stored in the state folder registered in it (each
    Connect session has its own settings)."""
    global _connect_mode_before
    before = os.environ.get(CONNECT_MODE)
    spark = remote_session(url, options.app_name)
    try:
        state = StatePaths(options.state.root.resolve())
        for name in sorted({*options.catalogs, *_catalogs_on_disk(state.warehouse)}):
            spark.conf.set(_CATALOG_PREFIX + _valid_catalog(name), CATALOG_CLASS)
    except BaseException:
        end_remote(spark, before)
        raise
    _connect_mode_before = before
    return spark  # get_spark answers Unity Catalog SQL on it once it is known as warm


def _warm_stop(spark: SparkSession) -> None:
    """End this process's Connect session; the server and its other sessions keep running."""
    end_remote(spark, _connect_mode_before)


CONNECT_MODE = "SPARK_CONNECT_MODE_ENABLED"
"""What pyspark sets in the environment once a process has a Spark Connect session: while it
is set, pyspark's functions build Connect columns, which a classic (local) session refuses
("Argument `col` should be Column or str, got Column")."""
_connect_mode_before: str | None = None


def remote_session(url: str, app_name: str | None = None) -> SparkSession:
    """A new Spark Connect session at `url`.

    pyspark marks the whole process as Connect (`CONNECT_MODE`) before it connects; when
    connecting fails (a server that is slow or gone), the mark is taken back here, so the
    process's local sessions and the classic API keep working.
    """
    from pyspark.sql import SparkSession

    before = os.environ.get(CONNECT_MODE)
    builder = SparkSession.builder.remote(url)
    if app_name:
        builder = builder.appName(app_name)
    try:
        return builder.create()
    except BaseException:
        _restore_connect_mode(before)
        raise


def end_remote(spark: SparkSession, before: str | None) -> None:
    """Stop a session of `remote_session` and give the process back the Connect mark it had
    before (`before`: the value of `CONNECT_MODE` then, None when unset)."""
    try:
        with contextlib.suppress(Exception):  # a server that is gone has nothing to release
            spark.stop()
    finally:
        _restore_connect_mode(before)


def _restore_connect_mode(before: str | None) -> None:
    if before is None:
        os.environ.pop(CONNECT_MODE, None)
    else:
        os.environ[CONNECT_MODE] = before


def _start_databricks(options: SessionOptions) -> SparkSession:
    connect: Any = importlib.import_module("databricks.connect")
    spark = cast("SparkSession", connect.DatabricksSession.builder.getOrCreate())
    for key, value in options.extra_conf.items():
        spark.conf.set(key, value)
    return spark


DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
QUICK_JIT = "-XX:TieredStopAtLevel=1"
"""The JVM option of a short-lived session (`SessionOptions.long_lived`): C1 only. Measured
on the revenue flow (100k trips, embedded, 2 cores): 43 s of CPU instead of 78 s."""


def local_conf(options: SessionOptions, jar: Path, delta: Iterable[Path] = ()) -> dict[str, str]:
    """Spark settings of a local session; each one is here for a reason given beside it."""
    state = StatePaths(options.state.root.resolve())
    metastore_db = state.metastore / "metastore_db"
    conf = {
        "spark.master": "local[*]",
        "spark.app.name": options.app_name,
        # persistent metastore and warehouse under the state folder, never in the cwd
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(state.warehouse),
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={metastore_db};create=true"
        ),
        # derby.log next to the metastore, not in the working directory; JVM temporary files
        # (Spark's block manager, Hive's per-session folders) in the state folder, not /tmp;
        # warnings-only logs; the quick compiler only unless the JVM is long-lived
        "spark.driver.extraJavaOptions": " ".join(
            ([] if options.long_lived else [QUICK_JIT])
            + [
                f'-D{key}="{value}"'
                for key, value in {
                    "derby.system.home": state.metastore,
                    "derby.stream.error.file": state.metastore / "derby.log",
                    "java.io.tmpdir": state.tmp,
                    "log4j2.configurationFile": LOG_CONFIG.as_uri(),
                }.items()
            ]
        ),
        # one folder for Hive's downloads instead of a new one per session
        "spark.hadoop.hive.downloaded.resources.dir": str(state.tmp / "hive-resources"),
        # the plugin on the JVM class path at launch: catalogs, py4j, Hadoop and the Hive
        # client's class loader all see it, also after a stop() and restart in this process
        "spark.driver.extraClassPath": str(jar),
        # flow tasks' writes to shared input catalogs fail in analysis (SharedInputs.java);
        # with Delta, its extension comes first (below)
        "spark.sql.extensions": SHARED_INPUTS_EXTENSION,
        # V1 reads of tables from a non-session catalog need partitions found on disk
        "spark.sql.hive.manageFilesourcePartitions": "false",
        # /Volumes/<catalog>/<schema>/<volume>/... is <state>/volumes/<catalog>/... (also for
        # FileContext: streaming checkpoints and Delta's log writer)
        "spark.hadoop.fs.file.impl": VOLUMES_FS_CLASS,
        "spark.hadoop.fs.AbstractFileSystem.file.impl": VOLUMES_FS_CLASS + "$Fs",
        "spark.hadoop.meshops.volumes.root": str(state.volumes),
        # dbfs:/x is <state>/dbfs/x (both the FileSystem and the AbstractFileSystem that
        # Delta's log writer uses)
        "spark.hadoop.fs.dbfs.impl": DBFS_FS_CLASS,
        "spark.hadoop.fs.AbstractFileSystem.dbfs.impl": DBFS_FS_CLASS + "$Fs",
        "spark.hadoop.meshops.dbfs.root": str(state.dbfs),
        # small machine: few shuffle partitions, AQE to coalesce them, no UI, no progress bars
        "spark.sql.shuffle.partitions": str(options.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # a laptop's host name may not resolve; nothing here is reached from elsewhere
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        # as on Databricks: UTC session time zone, Arrow for pandas conversions
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Python workers in this interpreter, whose packages the driver has
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    if options.delta:
        conf.update(
            {
                # Delta Lake as on Databricks: its jars beside Spark's (what spark.jars.packages
                # would add), its SQL (MERGE, OPTIMIZE, time travel...), its catalog under every
                # table, and the default format of tables made without USING
                "spark.jars": ",".join(str(j) for j in delta),
                "spark.sql.extensions": f"{DELTA_EXTENSION},{SHARED_INPUTS_EXTENSION}",
                "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
                "spark.sql.sources.default": "delta",
                # a Delta log is replayed with 50 tasks by default: too many for a laptop's tables
                "spark.databricks.delta.snapshotPartitions": "2",
                # VACUUM lists files with this many tasks (default 10,000: minutes on a laptop)
                "spark.sql.sources.parallelPartitionDiscovery.parallelism": "4",
                # Delta's SQL parser drops named and positional parameters (spark.sql(q, args))
                # since Spark 4.1 binds them while parsing (delta-io/delta#7640): bind them as
                # Spark 4.0 (Databricks Runtime 17.3) does, where a constant may stand
                "spark.sql.legacy.parameterSubstitution.constantsOnly": "true",
            }
        )
    for name in options.catalogs:
        conf[_CATALOG_PREFIX + _valid_catalog(name)] = CATALOG_CLASS
    conf.update(options.extra_conf)
    return conf


def _start_local(options: SessionOptions) -> SparkSession:
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        raise MeshopsError(
            "a Spark session not started by meshops runs in this process: stop it, or take the "
            "session from meshops.engine.session.get_spark everywhere"
        )
    java_tool("java")
    state = StatePaths(options.state.root.resolve())
    jar = plugin_jar(options.jar_cache or state.jars)
    delta = delta_jars() if options.delta else []
    for folder in (state.metastore, state.warehouse, state.volumes, state.dbfs, state.tmp):
        folder.mkdir(parents=True, exist_ok=True)
    _lock_state(state.root)
    try:
        if SparkContext._gateway is None:
            _check_metastore_free(state.metastore / "metastore_db")
        return _start_local_locked(options, state, jar, delta)
    except BaseException:
        _release_state()
        raise


def _start_local_locked(
    options: SessionOptions, state: StatePaths, jar: Path, delta: list[Path]
) -> SparkSession:
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    # the driver binds to 127.0.0.1; this also spares the "hostname resolves to loopback" warning
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = SparkConf().setAll(list(local_conf(options, jar, delta).items()))
    spark = SparkSession.builder.config(conf=conf).getOrCreate()
    _exit_with_jvm(SparkContext._gateway)
    # schemas stored by earlier processes: their catalogs resolve from the first query
    register_catalogs(spark, _catalogs_on_disk(state.warehouse))
    # Unity Catalog SQL OSS Spark does not parse (USE CATALOG, volumes, grants)
    from meshops.engine import autoloader, unity

    unity.install(spark, state)
    # Auto Loader: spark.readStream.format("cloudFiles") in notebooks and pipeline sources
    autoloader.install()
    return spark


def _catalogs_on_disk(warehouse: Path) -> set[str]:
    """Catalogs with a schema folder (`<catalog>__<schema>.db`) in the warehouse.

    Reading the folder names, not the metastore, keeps the metastore (seconds to open)
    out of start-up. A schema created with a LOCATION elsewhere is not seen here: name its
    catalog in `SessionOptions.catalogs` or `register_catalogs`.
    """
    found = set()
    if warehouse.is_dir():
        for entry in warehouse.iterdir():
            catalog, sep, schema = entry.name.partition("__")
            if sep and schema.endswith(".db") and _CATALOG_NAME.fullmatch(catalog):
                found.add(catalog)
    return found - _RESERVED_CATALOGS


def _exit_with_jvm(gateway: Any) -> None:
    """Make this process's exit wait for its JVM's, so the metastore is free once it is gone.

    pyspark's JVM ends when its stdin closes, some time after Python exits; a process
    started right after this one would otherwise find the metastore still locked.
    """
    global _exit_hook
    proc = getattr(gateway, "proc", None)
    if proc is None or proc.stdin is None or _exit_hook:
        return

    def close() -> None:
        # stop Spark first: a JVM that vanishes under a live session makes py4j and the
        # accumulator server print tracebacks on the way out
        with contextlib.suppress(Exception):
            stop()
        with contextlib.suppress(OSError):
            proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_JVM_EXIT_SECONDS)

    atexit.register(close)
    _exit_hook = True


def local_start() -> bool:
    """Whether the next `get_spark` with mode "auto" would start local Spark."""
    try:
        return _choose_mode("auto") == "local"
    except MeshopsError:
        return False


def describe_holder(text: str) -> None:
    """What this process is doing, shown to another run refused the state dir (`flow x/y`)."""
    global _holder
    with _lock:
        _holder = text
        if _held is not None:
            _write_holder(_held)


def _write_holder(handle: IO[str]) -> None:
    since = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    info = {"pid": os.getpid(), "host": socket.gethostname(), "what": _holder, "since": since}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(info))
    handle.flush()


def _lock_state(root: Path) -> None:
    """Take the state dir for this process's session, or refuse with one line naming the holder.

    An flock on `<state>/session.lock`, taken before Spark (and Derby) start, so two runs
    can never both get past this point; the kernel drops it when the process ends, even
    when it is killed, so a stale lock file never blocks anyone.
    """
    global _held
    if sys.platform == "win32" or _held is not None:
        return
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    path = root / STATE_LOCK
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        text = handle.read()
        handle.close()
        raise MeshopsError(
            f"{root} is in use by {_describe_other(text)}: wait for it to end "
            "or point MESHOPS_STATE_DIR at another folder"
        ) from None
    _write_holder(handle)
    _held = handle


def _describe_other(text: str) -> str:
    try:
        info = json.loads(text)
        return (
            f"another meshops run (pid {info['pid']} on {info['host']}, {info['what']}, "
            f"since {info['since']})"
        )
    except (ValueError, KeyError, TypeError):
        return "another meshops run"


def _release_state() -> None:
    global _held
    handle, _held = _held, None
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
        handle.close()  # closing the last descriptor drops the flock


def _check_metastore_free(metastore_db: Path) -> None:
    """Fail with a clear message when another process holds the Derby metastore.

    Derby allows one JVM per database and holds a lock on `dbex.lck` while it has the
    database open; Spark's own error for this is pages of stack trace. A JVM whose Python
    was killed ends a moment later, so the lock gets a short grace period.
    """
    lock = metastore_db / "dbex.lck"
    if sys.platform == "win32" or not lock.is_file():
        return
    import fcntl

    deadline = time.monotonic() + _LOCK_GRACE_SECONDS
    with lock.open("rb+") as handle:
        while True:
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise MeshopsError(
                    f"the local metastore {metastore_db} is in use by another Spark process: "
                    f"wait for it to end or point MESHOPS_STATE_DIR at another folder"
                ) from None
            fcntl.lockf(handle, fcntl.LOCK_UN)
            return


# ---- helpers -------------------------------------------------------------------------------


def _valid_catalog(name: str) -> str:
    if not _CATALOG_NAME.fullmatch(name) or name in _RESERVED_CATALOGS:
        raise InvalidInput(
            f"catalog name {name!r}: use lower-case letters, digits and single underscores "
            f"(not {', '.join(sorted(_RESERVED_CATALOGS))})"
        )
    return name


def _alive(spark: SparkSession) -> bool:
    if hasattr(spark, "_jsparkSession"):
        return getattr(spark.sparkContext, "_jsc", None) is not None
    return not bool(getattr(spark, "is_stopped", False))


def _jvm(spark: SparkSession) -> Any:
    return spark.sparkContext._jvm


def _metastore_catalogs(spark: SparkSession) -> list[str]:
    if mode(spark) == "warm":  # the metastore's databases `c__s`, as TaskWrites.java reads them
        databases = [str(row[0]) for row in spark.sql("SHOW SCHEMAS IN spark_catalog").collect()]
        parts = (db.partition(UNITY_SEPARATOR) for db in databases)
        return sorted({c for c, sep, rest in parts if c and sep and rest})
    jvm = _jvm(spark)
    return list(jvm.meshops.spark.TaskWrites.metastoreCatalogs(spark._jsparkSession))
