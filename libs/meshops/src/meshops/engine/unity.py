"""Unity Catalog SQL that OSS Spark does not parse, answered by the local session.

Notebooks and `%sql` cells written for Databricks use `USE CATALOG`, `CREATE CATALOG`,
volumes, grants and `spark.databricks.*` settings that local Spark rejects. `install` patches
the classic `SparkSession.sql` and `RuntimeConfig.set` so these work on a local session, and
their Spark Connect twins for a session on the warm engine (other Connect sessions are left
as they are):

- `USE CATALOG c`, `USE SCHEMA c.s`, `CREATE/DROP CATALOG`, `SHOW CATALOGS` act on the local
  catalogs (schema `s` of catalog `c` is metastore database `c__s`).
- Volumes are folders `<state>/volumes/<c>/<s>/<v>`; their type, comment and owner are kept in
  `<state>/unity.sqlite`. External volumes are local folders too: the LOCATION is recorded,
  never read.
- GRANT, REVOKE, `ALTER ... OWNER TO` and `SHOW GRANTS` are recorded there, not enforced.
- In a flow task, the shared input catalogs (`external_catalogs`) are read-only: creating or
  dropping their volumes, or dropping the catalog, fails as their tables' writes do (the
  catalog plugin refuses those; see `session.task_tag`).
- Databricks-only statements that stay unavailable fail with a `DatabricksOnlySyntax` that
  says what to do instead; every other statement reaches Spark unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import re
import shutil
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshops.engine import session as sessions
from meshops.errors import MeshopsError
from meshops.sqlitefile import SqliteFile
from meshops.state import StatePaths

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class UnityCatalogError(MeshopsError):
    """A Unity Catalog statement failed locally as it would on Databricks (same condition)."""


class DatabricksOnlySyntax(MeshopsError):
    """A statement only Databricks runs; the message says what to do locally instead."""


class DatabricksOnlyConfig(UserWarning):
    """A `spark.conf.set` that Databricks honours and local Spark ignores."""


# ---- installing ----------------------------------------------------------------------------


@dataclass
class _Installed:
    state: StatePaths
    warned_keys: set[str] = field(default_factory=set)


_lock = threading.Lock()
_installed: _Installed | None = None
_grant_note_shown = False
_PATCHED = "__meshops_unity__"


def install(spark: SparkSession, state: StatePaths) -> None:
    """Answer Unity Catalog SQL and Databricks settings on local session `spark` (idempotent).

    Call it right after a local or warm session starts; other remote sessions are left alone,
    since their server speaks Unity Catalog itself.
    """
    global _installed
    if not sessions.owns_catalogs(spark):
        return
    if sessions.mode(spark) == "local":
        from pyspark.sql.conf import RuntimeConfig
        from pyspark.sql.session import SparkSession as ClassicSession

        session_class: Any = ClassicSession
        conf_class: Any = RuntimeConfig
    else:
        from pyspark.sql.connect.conf import RuntimeConf
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        session_class, conf_class = ConnectSession, RuntimeConf
    with _lock:
        if _installed is None or _installed.state.root.resolve() != state.root.resolve():
            _installed = _Installed(StatePaths(state.root.resolve()))
        if not getattr(session_class.sql, _PATCHED, False):
            session_class.sql = _patched_sql(session_class.sql)
        if not getattr(conf_class.set, _PATCHED, False):
            conf_class.set = _patched_set(conf_class.set)


def _active(spark: Any) -> _Installed | None:
    installed = _installed
    if installed is None or not sessions.owns_catalogs(spark):
        return None
    return installed


def _patched_sql(original: Callable[..., DataFrame]) -> Callable[..., DataFrame]:
    def sql(
        self: SparkSession,
        sqlQuery: str,  # noqa: N803 - pyspark's name, callers pass it by keyword
        args: Any = None,
        **kwargs: Any,
    ) -> DataFrame:
        installed = _active(self)
        if installed is None:
            return original(self, sqlQuery, args, **kwargs)
        if args is None and not kwargs and isinstance(sqlQuery, str):
            answer = _Statements(self, installed.state, original).run(sqlQuery)
            if answer is not None:
                return answer
        try:
            return original(self, sqlQuery, args, **kwargs)
        except Exception as exc:
            unavailable = _unavailable(sqlQuery, exc) if isinstance(sqlQuery, str) else None
            if unavailable is not None:
                raise unavailable from None
            raise

    setattr(sql, _PATCHED, True)
    sql.__wrapped__ = original  # type: ignore[attr-defined]
    sql.__doc__ = original.__doc__
    return sql


def _patched_set(original: Callable[..., None]) -> Callable[..., None]:
    def conf_set(self: Any, key: str, value: str | int | bool) -> None:
        installed = _installed
        if installed is None:
            original(self, key, value)
            return
        if _databricks_only_key(key):
            _warn_config(installed, key, "a Databricks setting")
            try:
                original(self, key, value)  # kept, so spark.conf.get reads it back
            except Exception as exc:
                if _condition(exc) != "CANNOT_MODIFY_CONFIG":
                    raise
            return
        try:
            original(self, key, value)
        except Exception as exc:
            if _condition(exc) != "CANNOT_MODIFY_CONFIG" or not _cluster_key(key):
                raise
            _warn_config(installed, key, "a cluster setting local Spark fixes at start")

    setattr(conf_set, _PATCHED, True)
    conf_set.__wrapped__ = original  # type: ignore[attr-defined]
    conf_set.__doc__ = original.__doc__
    return conf_set


_DATABRICKS_PREFIXES = ("spark.databricks.", "databricks.")
# set per notebook on Databricks for storage and cluster tuning; fixed at start locally
_CLUSTER_PREFIXES = ("spark.hadoop.", "spark.executor.", "spark.driver.", "spark.task.")


_DELTA_PREFIX = "spark.databricks.delta."
"""Delta Lake's own settings keep Databricks' prefix and do work locally."""


def _databricks_only_key(key: str) -> bool:
    return key.startswith(_DATABRICKS_PREFIXES) and not key.startswith(_DELTA_PREFIX)


def _cluster_key(key: str) -> bool:
    return key.startswith(_CLUSTER_PREFIXES)


def _warn_config(installed: _Installed, key: str, what: str) -> None:
    with _lock:
        if key in installed.warned_keys:
            return
        installed.warned_keys.add(key)
    warnings.warn(
        f"spark.conf.set({key!r}): {what}, no effect on local Spark",
        DatabricksOnlyConfig,
        stacklevel=3,
    )


def _condition(exc: BaseException) -> str | None:
    get = getattr(exc, "getCondition", None)
    if get is None:
        return None
    try:
        value = get()
    except Exception:
        return None
    return value if isinstance(value, str) else None


# ---- Java errors ---------------------------------------------------------------------------


def java_cause(exc: BaseException) -> str:
    """One line for a failed Spark call: the Java cause's class and first message line.

    py4j's `Py4JJavaError` says "An error occurred while calling o67.sql" and hides the reason
    in a stack trace; users need e.g. `SparkClassNotFoundException: [DATA_SOURCE_NOT_FOUND]
    ...`. The first throwable of the cause chain with a Spark error condition wins, else the
    root cause. Without a live JVM the text of the py4j message is used.
    """
    java = getattr(exc, "java_exception", None)
    if java is not None:
        with contextlib.suppress(Exception):  # the JVM is gone: fall back to the message text
            return _describe_throwable(_pick_cause(java))
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("An error occurred while calling") and len(lines) > 1:
        detail = lines[1].removeprefix(": ")
        name, sep, message = detail.partition(": ")
        if sep and re.fullmatch(r"[\w$.]+", name):
            return f"{name.rsplit('.', 1)[-1]}: {message}"
        return detail
    return lines[0] if lines else type(exc).__name__


def _pick_cause(throwable: Any) -> Any:
    chain: list[Any] = []
    current = throwable
    while current is not None and len(chain) < 32:
        chain.append(current)
        cause = current.getCause()
        current = None if cause is None or any(cause.equals(t) for t in chain) else cause
    for candidate in chain:
        condition = None
        with contextlib.suppress(Exception):  # not a SparkThrowable
            condition = candidate.getCondition()
        if condition:
            return candidate
    return chain[-1]


def _describe_throwable(throwable: Any) -> str:
    name = str(throwable.getClass().getName()).rsplit(".", 1)[-1]
    message = throwable.getMessage()
    first = next((line.strip() for line in str(message or "").splitlines() if line.strip()), "")
    return f"{name}: {first}" if first else name


# ---- Databricks-only statements ------------------------------------------------------------

_PIPELINES = (
    "needs Lakeflow Declarative Pipelines, which meshops does not run locally yet (planned): "
    "create a regular table with CREATE OR REPLACE TABLE ... AS SELECT for now"
)
_UNAVAILABLE: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE | re.DOTALL), message)
    for pattern, message in (
        (
            r"COPY\s+INTO\b",
            "COPY INTO is Databricks-only: read the files with spark.read (e.g. "
            "spark.read.format('csv').load('/Volumes/...')) and write them with MERGE INTO or "
            "saveAsTable(..., mode='append')",
        ),
        (
            r"CREATE\s+(?:OR\s+(?:REFRESH|REPLACE)\s+)?(?:STREAMING\s+(?:LIVE\s+)?TABLE|LIVE\s+TABLE)\b",
            f"a streaming table {_PIPELINES}",
        ),
        (
            r"CREATE\s+(?:OR\s+(?:REFRESH|REPLACE)\s+)?(?:MATERIALIZED\s+VIEW|LIVE\s+VIEW)\b",
            f"a materialized view {_PIPELINES}",
        ),
        (
            r"REFRESH\s+(?:MATERIALIZED\s+VIEW|STREAMING\s+TABLE)\b",
            f"REFRESH of a pipeline dataset {_PIPELINES}",
        ),
        (
            r"(?:APPLY\s+CHANGES|AUTO\s+CDC)\s+INTO\b|CREATE\s+FLOW\b",
            "APPLY CHANGES INTO (AUTO CDC) runs only in Lakeflow Declarative Pipelines: "
            "apply the changes with MERGE INTO a table instead",
        ),
        (
            r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?FUNCTION\b.*\bLANGUAGE\s+PYTHON\b",
            "SQL functions in LANGUAGE PYTHON are Databricks-only: define the function in "
            "Python and register it with spark.udf.register('name', fn, 'return type')",
        ),
        (
            r"LIST\s+['\"]",
            "LIST '<path>' is Databricks-only: use dbutils.fs.ls('/Volumes/...') locally",
        ),
        (
            r"(?:CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+)?(?:CONNECTION|FOREIGN\s+CATALOG)\b",
            "Lakehouse Federation connections are Databricks-only: read the source with "
            "spark.read.jdbc(...) or from files locally",
        ),
        (
            r"CREATE\s+CATALOG\b.*\bUSING\s+SHARE\b|(?:CREATE|ALTER|DROP)\s+(?:OR\s+REPLACE\s+)?"
            r"(?:SHARE|RECIPIENT|PROVIDER)\b",
            "Delta Sharing (shares, recipients, providers) is Databricks-only: run it on a "
            "workspace; locally read the shared tables' data from files",
        ),
        (
            r"(?:CREATE|ALTER|DROP)\s+(?:EXTERNAL\s+LOCATION|STORAGE\s+CREDENTIAL|"
            r"SERVICE\s+CREDENTIAL|CREDENTIAL)\b",
            "external locations and credentials are Databricks-only: local paths and "
            "/Volumes/... are folders of the state dir",
        ),
    )
)
_UNAVAILABLE_CONDITIONS = frozenset(
    {
        "PARSE_SYNTAX_ERROR",
        "_LEGACY_ERROR_TEMP_0064",  # REFRESH MATERIALIZED VIEW
        "UNSUPPORTED_FEATURE.CREATE_PIPELINE_DATASET_QUERY_EXECUTION",
    }
)


def _unavailable(statement: str, exc: BaseException) -> DatabricksOnlySyntax | None:
    """The error to raise instead of Spark's parse error for a Databricks-only statement."""
    if _condition(exc) not in _UNAVAILABLE_CONDITIONS:
        return None
    text = _strip(statement)
    for pattern, message in _UNAVAILABLE:
        if pattern.match(text):
            return DatabricksOnlySyntax(message)
    return None


# ---- recognising statements ----------------------------------------------------------------

_IDENT = r"(?:`(?:[^`]|``)+`|[A-Za-z0-9_]+)"
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_STRING = r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
_PRINCIPAL = r"(?:`(?:[^`]|``)+`|[^\s`]+)"
_SECURABLES = (
    r"CATALOG|SCHEMA|DATABASE|TABLE|VIEW|MATERIALIZED\s+VIEW|STREAMING\s+TABLE|VOLUME|"
    r"FUNCTION|REGISTERED\s+MODEL|MODEL|EXTERNAL\s+LOCATION|STORAGE\s+CREDENTIAL|"
    r"SERVICE\s+CREDENTIAL|CREDENTIAL|CONNECTION|SHARE|RECIPIENT|PROVIDER|CLEAN\s+ROOM|"
    r"METASTORE|ANY\s+FILE|ANONYMOUS\s+FUNCTION"
)
_ON = rf"ON\s+(?:(?P<kind>{_SECURABLES})\b)?\s*(?P<name>{_NAME})?"
_COMMENT = rf"(?:\s+COMMENT\s+(?P<comment>{_STRING}))?"


def _statement(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


_USE_CATALOG = _statement(rf"USE\s+CATALOG\s+(?P<name>{_IDENT})")
_USE_SCHEMA = _statement(
    rf"USE\s+(?:SCHEMA|DATABASE|NAMESPACE)\s+(?P<catalog>{_IDENT})\s*\.\s*(?P<schema>{_IDENT})"
)
_CREATE_CATALOG = _statement(
    rf"CREATE\s+CATALOG\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})"
    rf"(?:\s+MANAGED\s+LOCATION\s+{_STRING}|\s+COMMENT\s+{_STRING})*"
)
_DROP_CATALOG = _statement(
    rf"DROP\s+CATALOG\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_IDENT})(?:\s+(?P<how>CASCADE|RESTRICT))?"
)
_SHOW_CATALOGS = _statement(rf"SHOW\s+CATALOGS(?:\s+(?:LIKE\s+)?(?P<pattern>{_STRING}))?")
_CREATE_VOLUME = _statement(
    rf"CREATE\s+(?P<external>EXTERNAL\s+)?VOLUME\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_NAME})"
    rf"(?:\s+LOCATION\s+(?P<location>{_STRING}))?{_COMMENT}"
)
_DROP_VOLUME = _statement(rf"DROP\s+VOLUME\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_NAME})")
_SHOW_VOLUMES = _statement(
    rf"SHOW\s+VOLUMES(?:\s+(?:IN|FROM)\s+(?P<schema>{_NAME}))?"
    rf"(?:\s+(?:LIKE\s+)?(?P<pattern>{_STRING}))?"
)
_DESCRIBE_VOLUME = _statement(rf"DESC(?:RIBE)?\s+VOLUME\s+(?:EXTENDED\s+)?(?P<name>{_NAME})")
_GRANT = _statement(rf"GRANT\s+(?P<privs>.+?)\s+{_ON}\s+TO\s+(?P<principal>{_PRINCIPAL})")
_REVOKE = _statement(rf"REVOKE\s+(?P<privs>.+?)\s+{_ON}\s+FROM\s+(?P<principal>{_PRINCIPAL})")
_OWNER = _statement(
    rf"ALTER\s+(?P<kind>{_SECURABLES})\s+(?P<name>{_NAME})\s+(?:SET\s+)?OWNER\s+TO\s+"
    rf"(?P<principal>{_PRINCIPAL})"
)
_SHOW_GRANTS = _statement(rf"SHOW\s+GRANTS?(?:\s+(?P<principal>{_PRINCIPAL}))?\s+{_ON}")

_FIRST_WORDS = re.compile(
    r"(?:USE|CREATE|DROP|SHOW|DESC(?:RIBE)?|GRANT|REVOKE|ALTER)\b", re.IGNORECASE
)
"""How every statement handled here starts: the rest go straight to Spark."""

_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*", re.DOTALL)


def _strip(statement: str) -> str:
    """The statement without leading comments and the trailing `;`: what the patterns see."""
    text = _LEADING_COMMENTS.sub("", statement, count=1)
    return text.rstrip().rstrip(";").rstrip()


def _unquote(ident: str) -> str:
    ident = ident.strip()
    if ident.startswith("`") and ident.endswith("`"):
        return ident[1:-1].replace("``", "`")
    return ident


def _parts(name: str) -> list[str]:
    return [_unquote(part) for part in re.findall(_IDENT, name)]


def _string(literal: str | None) -> str | None:
    if literal is None:
        return None
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def _quote(ident: str) -> str:
    return "`" + ident.replace("`", "``") + "`"


def _like(pattern: str | None) -> Callable[[str], bool]:
    """Databricks' SHOW ... LIKE: `*` any characters, `|` alternatives, case-insensitive."""
    if pattern is None:
        return lambda _: True
    alternatives = [
        re.compile(alt.strip().replace("*", ".*"), re.IGNORECASE)
        for alt in pattern.strip().split("|")
    ]
    return lambda value: any(alt.fullmatch(value) for alt in alternatives)


# ---- the record ----------------------------------------------------------------------------


class _Record(SqliteFile):
    """Volumes' metadata, grants and owners: recorded locally, never enforced."""

    schema = """
    CREATE TABLE IF NOT EXISTS volumes (
        catalog TEXT NOT NULL, schema TEXT NOT NULL, name TEXT NOT NULL,
        volume_type TEXT NOT NULL, location TEXT, comment TEXT, created_at TEXT NOT NULL,
        PRIMARY KEY (catalog, schema, name));
    CREATE TABLE IF NOT EXISTS grants (
        object_type TEXT NOT NULL, object_key TEXT NOT NULL, principal TEXT NOT NULL,
        privilege TEXT NOT NULL, granted_at TEXT NOT NULL,
        PRIMARY KEY (object_type, object_key, principal, privilege));
    CREATE TABLE IF NOT EXISTS owners (
        object_type TEXT NOT NULL, object_key TEXT NOT NULL, principal TEXT NOT NULL,
        PRIMARY KEY (object_type, object_key));
    """


def record_path(state: StatePaths) -> Path:
    """Where volumes' metadata, grants and owners of the local catalogs are recorded."""
    return state.root / "unity.sqlite"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _grant_note() -> None:
    global _grant_note_shown
    with _lock:
        if _grant_note_shown:
            return
        _grant_note_shown = True
    print(
        "meshops: GRANT, REVOKE and OWNER TO are recorded locally (SHOW GRANTS reads them), "
        "not enforced",
        file=sys.stderr,
    )


# ---- answering -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Securable:
    kind: str
    key: str

    def ancestors(self) -> list[_Securable]:
        """This object and the catalog and schema it inherits privileges from."""
        parts = self.key.split(".")
        found = [self]
        if self.kind in _THREE_LEVEL and len(parts) == 3:
            found += [_Securable("SCHEMA", ".".join(parts[:2])), _Securable("CATALOG", parts[0])]
        elif self.kind == "SCHEMA" and len(parts) == 2:
            found.append(_Securable("CATALOG", parts[0]))
        return found


_THREE_LEVEL = frozenset(
    {"TABLE", "VIEW", "MATERIALIZED VIEW", "STREAMING TABLE", "VOLUME", "FUNCTION", "MODEL"}
)


class _Statements:
    """The Unity Catalog statements of one `spark.sql` call; `run` is None for all others."""

    def __init__(
        self, spark: SparkSession, state: StatePaths, sql: Callable[..., DataFrame]
    ) -> None:
        self.spark, self.state, self._sql = spark, state, sql

    def run(self, statement: str) -> DataFrame | None:
        text = _strip(statement)
        if not _FIRST_WORDS.match(text):
            return None  # most statements: no pattern below to try
        handlers: Sequence[tuple[re.Pattern[str], Callable[[re.Match[str]], DataFrame]]] = (
            (_USE_CATALOG, self.use_catalog),
            (_USE_SCHEMA, self.use_schema),
            (_CREATE_CATALOG, self.create_catalog),
            (_DROP_CATALOG, self.drop_catalog),
            (_SHOW_CATALOGS, self.show_catalogs),
            (_CREATE_VOLUME, self.create_volume),
            (_DROP_VOLUME, self.drop_volume),
            (_SHOW_VOLUMES, self.show_volumes),
            (_DESCRIBE_VOLUME, self.describe_volume),
            (_GRANT, self.grant),
            (_REVOKE, self.revoke),
            (_OWNER, self.owner),
            (_SHOW_GRANTS, self.show_grants),
        )
        for pattern, handler in handlers:
            found = pattern.fullmatch(text)
            if found:
                return handler(found)
        return None

    # -- helpers

    def _empty(self) -> DataFrame:
        from pyspark.sql.types import StructType

        return self.spark.createDataFrame([], StructType([]))

    def _frame(self, rows: Iterable[tuple[Any, ...]], schema: str) -> DataFrame:
        return self.spark.createDataFrame(list(rows), schema)

    def _record(self) -> _Record:
        return _Record(record_path(self.state))

    def _catalogs(self) -> set[str]:
        return sessions.known_catalogs(self.spark) | {"spark_catalog"}

    def _current(self) -> tuple[str, str]:
        catalog = self.spark.catalog
        return str(catalog.currentCatalog()), str(catalog.currentDatabase())

    def _schema_exists(self, catalog: str, schema: str) -> bool:
        if catalog not in self._catalogs() or catalog == "spark_catalog":
            return False
        sessions.register_catalogs(self.spark, [catalog])
        return bool(self.spark.catalog.databaseExists(f"{_quote(catalog)}.{_quote(schema)}"))

    def _schemas(self, catalog: str) -> list[str]:
        rows = self._sql(self.spark, f"SHOW SCHEMAS IN {_quote(catalog)}").collect()
        return [str(row[0]) for row in rows]

    def _volume_name(self, name: str) -> tuple[str, str, str]:
        parts = [p.lower() for p in _parts(name)]
        current_catalog, current_schema = self._current()
        if len(parts) == 1:
            parts = [current_catalog, current_schema, *parts]
        elif len(parts) == 2:
            parts = [current_catalog, *parts]
        if len(parts) != 3:
            raise UnityCatalogError(f"volume name {name}: use catalog.schema.volume")
        if parts[0] == "spark_catalog":
            raise UnityCatalogError(
                f"volume {'.'.join(parts[1:])}: volumes live in a Unity Catalog catalog, not "
                f"spark_catalog: name it catalog.schema.volume or run USE CATALOG first"
            )
        return parts[0], parts[1], parts[2]

    def _writable(self, catalog: str) -> None:
        """Refuse a change to `catalog` when it is a shared input of this thread's flow task."""
        if catalog in sessions.read_only_catalogs(self.spark):
            from pyspark.errors import AnalysisException

            raise AnalysisException(message=sessions.shared_input_message(self.spark, catalog))

    def _require_schema(self, catalog: str, schema: str) -> None:
        if not self._schema_exists(catalog, schema):
            raise UnityCatalogError(
                f"[SCHEMA_NOT_FOUND] The schema {_quote(catalog)}.{_quote(schema)} cannot be "
                f"found: create it first (CREATE SCHEMA {catalog}.{schema})"
            )

    # -- catalogs

    def use_catalog(self, found: re.Match[str]) -> DataFrame:
        name = _unquote(found["name"]).lower()
        if name == "hive_metastore":
            name = "spark_catalog"  # Databricks' name of the session catalog
        if name not in self._catalogs():
            raise UnityCatalogError(
                f"[NO_SUCH_CATALOG_EXCEPTION] Catalog '{name}' was not found: create it with "
                f"CREATE CATALOG {name}, or check SHOW CATALOGS"
            )
        if name != "spark_catalog":
            sessions.register_catalogs(self.spark, [name])
        self.spark.catalog.setCurrentCatalog(name)
        return self._empty()

    def use_schema(self, found: re.Match[str]) -> DataFrame:
        catalog = _unquote(found["catalog"]).lower()
        if catalog in self._catalogs() and catalog != "spark_catalog":
            sessions.register_catalogs(self.spark, [catalog])
        schema = _quote(_unquote(found["schema"]))
        return self._sql(self.spark, f"USE {_quote(catalog)}.{schema}")

    def create_catalog(self, found: re.Match[str]) -> DataFrame:
        name = _unquote(found["name"]).lower()
        if name in self._catalogs():
            if found["ine"]:
                return self._empty()
            raise UnityCatalogError(
                f"[CATALOG_ALREADY_EXISTS] Cannot create catalog '{name}' because it already "
                f"exists: choose a different name or use CREATE CATALOG IF NOT EXISTS"
            )
        sessions.register_catalogs(self.spark, [name])  # validates the name
        # as in Unity Catalog, a new catalog has schema default; its folder in the warehouse
        # also makes later processes find the catalog
        self._sql(self.spark, f"CREATE SCHEMA IF NOT EXISTS {_quote(name)}.`default`")
        return self._empty()

    def drop_catalog(self, found: re.Match[str]) -> DataFrame:
        name = _unquote(found["name"]).lower()
        self._writable(name)
        if name == "spark_catalog" or name not in self._catalogs():
            if found["ie"] and name != "spark_catalog":
                return self._empty()
            raise UnityCatalogError(
                f"[NO_SUCH_CATALOG_EXCEPTION] Catalog '{name}' was not found"
                if name != "spark_catalog"
                else "spark_catalog (hive_metastore) cannot be dropped"
            )
        sessions.register_catalogs(self.spark, [name])
        schemas = self._schemas(name)
        volumes = self.state.volumes / name
        has_volumes = volumes.is_dir() and any(volumes.rglob("*"))
        empty = not has_volumes and all(
            schema == "default"
            and not self._sql(self.spark, f"SHOW TABLES IN {_quote(name)}.`default`").take(1)
            for schema in schemas
        )
        if not empty and (found["how"] or "").upper() != "CASCADE":
            raise UnityCatalogError(
                f"[CATALOG_NOT_EMPTY] Cannot drop catalog '{name}': it holds schemas, tables or "
                f"volumes; use DROP CATALOG {name} CASCADE"
            )
        for schema in schemas:
            self._sql(self.spark, f"DROP SCHEMA IF EXISTS {_quote(name)}.{_quote(schema)} CASCADE")
        shutil.rmtree(volumes, ignore_errors=True)
        with self._record().write() as db:
            db.execute("DELETE FROM volumes WHERE catalog = ?", (name,))
        if self._current()[0] == name:
            self.spark.catalog.setCurrentCatalog("spark_catalog")
        self.spark.conf.unset(f"spark.sql.catalog.{name}")
        return self._empty()

    def show_catalogs(self, found: re.Match[str]) -> DataFrame:
        wanted = _like(_string(found["pattern"]))
        names = sorted(name for name in self._catalogs() if wanted(name))
        return self._frame(((name,) for name in names), "catalog string")

    # -- volumes

    def create_volume(self, found: re.Match[str]) -> DataFrame:
        catalog, schema, name = self._volume_name(found["name"])
        self._writable(catalog)
        self._require_schema(catalog, schema)
        folder = self.state.volumes / catalog / schema / name
        if folder.is_dir():
            if found["ine"]:
                return self._empty()
            raise UnityCatalogError(
                f"[VOLUME_ALREADY_EXISTS] Cannot create volume {catalog}.{schema}.{name} because "
                f"it already exists: use CREATE VOLUME IF NOT EXISTS"
            )
        external = bool(found["external"])
        location = _string(found["location"])
        if external != (location is not None):
            raise UnityCatalogError(
                "an external volume needs LOCATION '<path>' and a managed one takes none: "
                "CREATE EXTERNAL VOLUME c.s.v LOCATION '...' or CREATE VOLUME c.s.v"
            )
        if external:
            print(
                f"meshops: external volume {catalog}.{schema}.{name} is the local folder "
                f"{folder}; {location} is recorded, not read",
                file=sys.stderr,
            )
        folder.mkdir(parents=True)
        with self._record().write() as db:
            db.execute(
                "INSERT OR REPLACE INTO volumes VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    catalog,
                    schema,
                    name,
                    "EXTERNAL" if external else "MANAGED",
                    location,
                    _string(found["comment"]),
                    _now(),
                ),
            )
        return self._empty()

    def drop_volume(self, found: re.Match[str]) -> DataFrame:
        catalog, schema, name = self._volume_name(found["name"])
        self._writable(catalog)
        folder = self.state.volumes / catalog / schema / name
        if not folder.is_dir():
            if found["ie"]:
                return self._empty()
            raise UnityCatalogError(
                f"[VOLUME_NOT_FOUND] Volume {catalog}.{schema}.{name} does not exist: "
                f"use DROP VOLUME IF EXISTS"
            )
        shutil.rmtree(folder)
        with self._record().write() as db:
            db.execute(
                "DELETE FROM volumes WHERE catalog = ? AND schema = ? AND name = ?",
                (catalog, schema, name),
            )
        return self._empty()

    def show_volumes(self, found: re.Match[str]) -> DataFrame:
        current_catalog, current_schema = self._current()
        parts = [p.lower() for p in _parts(found["schema"] or "")] or [current_schema]
        catalog, schema = ([current_catalog, *parts] if len(parts) == 1 else parts)[-2:]
        self._require_schema(catalog, schema)
        wanted = _like(_string(found["pattern"]))
        folder = self.state.volumes / catalog / schema
        names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        return self._frame(
            ((schema, name) for name in names if wanted(name)), "database string, volumeName string"
        )

    def describe_volume(self, found: re.Match[str]) -> DataFrame:
        catalog, schema, name = self._volume_name(found["name"])
        folder = self.state.volumes / catalog / schema / name
        if not folder.is_dir():
            raise UnityCatalogError(
                f"[VOLUME_NOT_FOUND] Volume {catalog}.{schema}.{name} does not exist"
            )
        with self._record().read() as db:
            row = db.execute(
                "SELECT volume_type, location, comment FROM volumes "
                "WHERE catalog = ? AND schema = ? AND name = ?",
                (catalog, schema, name),
            ).fetchone()
        volume_type, location, comment = row or ("MANAGED", None, None)
        owner = self._owner(_Securable("VOLUME", f"{catalog}.{schema}.{name}"))
        return self._frame(
            [(name, catalog, schema, owner, location or folder.as_uri(), volume_type, comment)],
            "name string, catalog string, database string, owner string, "
            "storageLocation string, volumeType string, comment string",
        )

    # -- grants

    def _securable(self, found: re.Match[str]) -> _Securable:
        kind = re.sub(r"\s+", " ", (found["kind"] or "TABLE").upper())
        kind = {"DATABASE": "SCHEMA", "REGISTERED MODEL": "MODEL"}.get(kind, kind)
        parts = [p.lower() for p in _parts(found["name"] or "")]
        current_catalog, current_schema = self._current()
        if kind in _THREE_LEVEL and len(parts) == 1:
            parts = [current_catalog, current_schema, *parts]
        elif (kind in _THREE_LEVEL and len(parts) == 2) or (kind == "SCHEMA" and len(parts) == 1):
            parts = [current_catalog, *parts]
        return _Securable(kind, ".".join(parts))

    def _owner(self, securable: _Securable) -> str:
        with self._record().read() as db:
            row = db.execute(
                "SELECT principal FROM owners WHERE object_type = ? AND object_key = ?",
                (securable.kind, securable.key),
            ).fetchone()
        return str(row[0]) if row else getpass.getuser()

    def grant(self, found: re.Match[str]) -> DataFrame:
        _grant_note()
        securable, principal = self._securable(found), _unquote(found["principal"])
        with self._record().write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO grants VALUES (?, ?, ?, ?, ?)",
                [
                    (securable.kind, securable.key, principal, privilege, _now())
                    for privilege in _privileges(found["privs"])
                ],
            )
        return self._empty()

    def revoke(self, found: re.Match[str]) -> DataFrame:
        _grant_note()
        securable, principal = self._securable(found), _unquote(found["principal"])
        with self._record().write() as db:
            db.executemany(
                "DELETE FROM grants WHERE object_type = ? AND object_key = ? "
                "AND lower(principal) = lower(?) AND privilege = ?",
                [
                    (securable.kind, securable.key, principal, privilege)
                    for privilege in _privileges(found["privs"])
                ],
            )
        return self._empty()

    def owner(self, found: re.Match[str]) -> DataFrame:
        _grant_note()
        securable, principal = self._securable(found), _unquote(found["principal"])
        with self._record().write() as db:
            db.execute(
                "INSERT OR REPLACE INTO owners VALUES (?, ?, ?)",
                (securable.kind, securable.key, principal),
            )
        return self._empty()

    def show_grants(self, found: re.Match[str]) -> DataFrame:
        securable = self._securable(found)
        principal = _unquote(found["principal"]) if found["principal"] else None
        rows: list[tuple[str, str, str, str]] = []
        with self._record().read() as db:
            for target in securable.ancestors():
                rows += db.execute(
                    "SELECT principal, privilege, object_type, object_key FROM grants "
                    "WHERE object_type = ? AND object_key = ? "
                    "AND (? IS NULL OR lower(principal) = lower(?)) "
                    "ORDER BY principal, privilege",
                    (target.kind, target.key, principal, principal),
                ).fetchall()
        return self._frame(
            rows,
            "principal string, actionType string, objectType string, objectKey string",
        )


def _privileges(text: str) -> list[str]:
    return [re.sub(r"\s+", " ", p.strip()).upper() for p in text.split(",") if p.strip()]
