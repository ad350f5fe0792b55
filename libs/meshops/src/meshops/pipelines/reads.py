"""How a query function's reads find the pipeline's datasets, and build them first.

While a flow's query function runs (`Resolver.evaluating`), every way a source reads a table
goes through the resolver: `dlt.read` / `dlt.read_stream`, `spark.table`, `spark.read.table`,
`spark.readStream.table` and `spark.sql` (whose query Spark's parser tells the tables of,
`STREAM(x)` included). A name of a dataset of this pipeline (`x`, `LIVE.x`, `schema.x`,
`catalog.schema.x`) is built first if this update has not built it yet, then read from its
Delta table (or, for a view, its DataFrame); any other name reads as Spark would. That is how
the update finds the order to run flows in without being told, as Lakeflow does by analysing
queries; a dataset that needs itself is a cycle, reported with the path.

The patches are installed once per process on the classic pyspark classes (as
`engine.unity` patches `SparkSession.sql`) and do nothing in a thread that runs no query
function, so notebooks of other tasks are never affected.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshops.pipelines import sqlsource
from meshops.pipelines.errors import PipelineError
from meshops.pipelines.graph import Dataset, Graph, full_name
from meshops.pipelines.sqlsource import Token

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_active: ContextVar[Resolver | None] = ContextVar("meshops_pipeline_reads", default=None)
_lock = threading.Lock()
_PATCHED = "__meshops_pipelines__"
_originals: dict[str, Callable[..., Any]] = {}

# Auto Loader's own options, which read_files takes without the `cloudFiles.` prefix
_AUTO_LOADER_OPTIONS = frozenset(
    {
        "format",
        "schemalocation",
        "schemahints",
        "schemaevolutionmode",
        "infercolumntypes",
        "includeexistingfiles",
        "maxfilespertrigger",
        "maxbytespertrigger",
        "partitioncolumns",
        "allowoverwrites",
        "usenotifications",
        "backfillinterval",
        "maxfileage",
    }
)


def require(what: str) -> Resolver:
    """The resolver of the query function running in this thread, or a clear error."""
    resolver = _active.get()
    if resolver is None:
        raise PipelineError(
            f"{what} reads a dataset of the pipeline, and works only inside a query function "
            "while a pipeline update runs (meshops run on a pipeline flow)"
        )
    return resolver


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Reads behave as plain Spark inside the block (the engine's own reads and writes)."""
    token = _active.set(None)
    try:
        yield
    finally:
        _active.reset(token)


@dataclass
class Resolver:
    """Reads of one update: dataset names to tables, building what is not built yet."""

    spark: SparkSession
    graph: Graph
    catalog: str
    schema: str
    build: Callable[[Dataset], None]
    """Builds a dataset if this update has not (the update's `ensure`); raises on a cycle."""
    views: dict[str, DataFrame] = field(default_factory=dict)
    _read_files: int = 0

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Reads in the block resolve through this resolver (a query function runs)."""
        install()
        token = _active.set(self)
        try:
            yield
        finally:
            _active.reset(token)

    def table_name(self, dataset: Dataset) -> str:
        """`catalog.schema.name` of a dataset (a name with a schema keeps it)."""
        return full_name(self.catalog, self.schema, dataset.name)

    def find(self, name: str) -> Dataset | None:
        """The dataset `name` means in this pipeline, if any."""
        parts = [p.lower() for p in _parts(name) or []]
        if not parts or len(parts) > 3:
            return None
        if len(parts) == 2 and parts[0] == "live":
            parts = parts[1:]
        wanted = full_name(self.catalog, self.schema, ".".join(parts))
        for dataset in self.graph.datasets.values():
            if self.table_name(dataset) == wanted and (dataset.kind != "view" or len(parts) == 1):
                return dataset
        return None

    def resolve(self, name: str, *, streaming: bool, what: str) -> DataFrame | None:
        """A read of `name`: the dataset's DataFrame once it is built; None for names that
        are not datasets of this pipeline (Spark reads those)."""
        dataset = self.find(name)
        if dataset is None:
            parts = _parts(name) or []
            if len(parts) == 2 and parts[0].lower() == "live":
                defined = ", ".join(sorted(d.name for d in self.graph.datasets.values()))
                raise PipelineError(
                    f"{what}({name!r}): this pipeline has no dataset '{parts[1]}' "
                    f"(it defines {defined})"
                )
            return None
        with suspended():
            self.build(dataset)
            if dataset.kind == "view":
                frame = self.views[dataset.key]
                if frame.isStreaming != streaming:
                    how = (
                        "a stream; read it with dlt.read_stream / spark.readStream"
                        if frame.isStreaming
                        else "not a stream; read it with dlt.read / spark.read"
                    )
                    raise PipelineError(f"{what}({name!r}): view '{dataset.name}' is {how}")
                return frame
            table = self.table_name(dataset)
            if streaming:
                return _originals["stream_table"](self.spark.readStream, table)  # type: ignore[no-any-return]
            return _originals["read_table"](self.spark.read, table)  # type: ignore[no-any-return]

    def read(self, name: str) -> DataFrame:
        found = self.resolve(name, streaming=False, what="dlt.read")
        return found if found is not None else self.spark.read.table(name)

    def read_stream(self, name: str) -> DataFrame:
        found = self.resolve(name, streaming=True, what="dlt.read_stream")
        return found if found is not None else self.spark.readStream.table(name)

    def prepare_sql(self, text: str) -> str:
        """A query with `LIVE.` qualifiers dropped and `read_files(...)` made a view; every
        dataset it reads is built first."""
        try:
            tokens = sqlsource.tokenize(text)
        except PipelineError:
            return text  # Spark says what is wrong with it
        tokens = self._drop_live(tokens)
        text = self._read_files_views(tokens)
        for parts, _streaming in sqlsource.table_references(self.spark, text):
            dataset = self.find(".".join(_quote(p) for p in parts))
            if dataset is not None:
                with suspended():
                    self.build(dataset)
        return text

    # -- helpers

    def _drop_live(self, tokens: list[Token]) -> list[Token]:
        out: list[Token] = []
        index = 0
        while index < len(tokens):
            token = tokens[index]
            if (
                token.upper == "LIVE"
                and index + 2 < len(tokens)
                and tokens[index + 1].text == "."
                and tokens[index + 2].kind in ("word", "quoted")
                and self.find(tokens[index + 2].name) is not None
            ):
                index += 2
                continue
            out.append(token)
            index += 1
        return out

    def _read_files_views(self, tokens: list[Token]) -> str:
        """`[STREAM] read_files(...)` / `STREAM(read_files(...))` -> a temporary view name."""
        significant = [i for i, t in enumerate(tokens) if t.kind not in ("space", "comment")]
        out: list[str] = []
        index = 0
        replaced: dict[int, tuple[int, str]] = {}
        for pos, i in enumerate(significant):
            token = tokens[i]
            if token.upper != "READ_FILES" or pos + 1 >= len(significant):
                continue
            if tokens[significant[pos + 1]].text != "(":
                continue
            close = _closing(tokens, significant, pos + 1)
            start, end, streaming = i, close, False
            before = [tokens[j] for j in significant[max(0, pos - 2) : pos]]
            if before and before[-1].upper == "STREAM":
                start, streaming = significant[pos - 1], True
            elif len(before) == 2 and before[0].upper == "STREAM" and before[1].text == "(":
                after = significant.index(close) + 1
                if after < len(significant) and tokens[significant[after]].text == ")":
                    start, end, streaming = significant[pos - 2], significant[after], True
            inside = tokens[significant[pos + 1] + 1 : close]
            replaced[start] = (end, self._files_view(inside, streaming))
        while index < len(tokens):
            if index in replaced:
                end, view = replaced[index]
                out.append(f" {view} ")
                index = end + 1
                continue
            out.append(tokens[index].text)
            index += 1
        return "".join(out)

    def _files_view(self, inside: list[Token], streaming: bool) -> str:
        items = sqlsource._split_commas([t for t in inside if t.kind not in ("space", "comment")])
        if not items or len(items[0]) != 1 or items[0][0].kind != "string":
            raise PipelineError("read_files needs the path first: read_files('/Volumes/...', ...)")
        path = sqlsource._unquote(items[0][0].text)
        options: dict[str, str] = {}
        for item in items[1:]:
            if len(item) != 3 or item[1].text != "=>":
                raise PipelineError(
                    "read_files options are `name => value`, e.g. read_files('/path', "
                    f"format => 'csv'); found {''.join(t.text for t in item)!r}"
                )
            value = item[2]
            options[item[0].name] = (
                sqlsource._unquote(value.text) if value.kind == "string" else value.text
            )
        frame = self._files_frame(path, options, streaming)
        self._read_files += 1
        name = f"__meshops_read_files_{self._read_files}"
        frame.createOrReplaceTempView(name)
        return name

    def _files_frame(self, path: str, options: dict[str, str], streaming: bool) -> DataFrame:
        schema = options.pop("schema", None)
        fmt = options.pop("format", None)
        if streaming:
            reader: Any = self.spark.readStream.format("cloudFiles")
            if fmt:
                reader = reader.option("cloudFiles.format", fmt)
            if schema is None and not any(k.lower() == "infercolumntypes" for k in options):
                # read_files types the columns it infers; Auto Loader's own default is strings
                reader = reader.option("cloudFiles.inferColumnTypes", "true")
            for key, value in options.items():
                prefixed = f"cloudFiles.{key}" if key.lower() in _AUTO_LOADER_OPTIONS else key
                reader = reader.option(prefixed, value)
        else:
            reader = self.spark.read.format(fmt or "parquet")
            if fmt in ("csv", "json") and "inferSchema" not in options and schema is None:
                reader = reader.option("inferSchema", "true")
            reader = reader.options(**options)
        if schema is not None:
            reader = reader.schema(schema)
        try:
            return reader.load(path)  # type: ignore[no-any-return]
        except Exception as exc:
            raise PipelineError(f"read_files({path!r}): {sqlsource._reason(exc)}") from exc


def _closing(tokens: list[Token], significant: list[int], open_pos: int) -> int:
    depth = 0
    for i in significant[open_pos:]:
        if tokens[i].text == "(":
            depth += 1
        elif tokens[i].text == ")":
            depth -= 1
            if depth == 0:
                return i
    raise PipelineError("read_files( ... is missing its closing parenthesis")


def _parts(name: str) -> list[str] | None:
    """Name parts of `a.b.c` / `` `a`.b `` (None when it is no table name)."""
    try:
        tokens = [t for t in sqlsource.tokenize(name) if t.kind != "space"]
    except PipelineError:
        return None
    parts: list[str] = []
    for index, token in enumerate(tokens):
        if index % 2 == 0:
            if token.kind not in ("word", "quoted"):
                return None
            parts.append(token.name)
        elif token.text != ".":
            return None
    return parts if parts and len(tokens) % 2 == 1 else None


def _quote(part: str) -> str:
    return f"`{part.replace('`', '``')}`"


# ---- the patches ---------------------------------------------------------------------------


def install() -> None:
    """Route the classic session's table reads and SQL through the active resolver (once)."""
    from pyspark.sql.readwriter import DataFrameReader
    from pyspark.sql.session import SparkSession
    from pyspark.sql.streaming.readwriter import DataStreamReader

    with _lock:
        if _originals:
            return
        _originals["session_table"] = SparkSession.table
        _originals["read_table"] = DataFrameReader.table
        _originals["stream_table"] = DataStreamReader.table
        _originals["sql"] = SparkSession.sql
        SparkSession.table = _table_read(SparkSession.table, streaming=False)  # type: ignore[method-assign]
        DataFrameReader.table = _table_read(DataFrameReader.table, streaming=False)  # type: ignore[method-assign]
        DataStreamReader.table = _table_read(DataStreamReader.table, streaming=True)  # type: ignore[method-assign]
        SparkSession.sql = _sql(SparkSession.sql)  # type: ignore[method-assign]


def _table_read(original: Callable[..., DataFrame], *, streaming: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    def table(self: Any, tableName: str) -> DataFrame:  # noqa: N803 - pyspark's name
        resolver = _active.get()
        if resolver is not None and isinstance(tableName, str):
            what = "spark.readStream.table" if streaming else "spark.read.table"
            found = resolver.resolve(tableName, streaming=streaming, what=what)
            if found is not None:
                return found
        return original(self, tableName)

    setattr(table, _PATCHED, True)
    return table


def _sql(original: Callable[..., DataFrame]) -> Callable[..., Any]:
    @functools.wraps(original)
    def sql(self: Any, sqlQuery: str, args: Any = None, **kwargs: Any) -> DataFrame:  # noqa: N803
        resolver = _active.get()
        query = sqlQuery
        if resolver is not None and isinstance(query, str):
            query = resolver.prepare_sql(query)
        return original(self, query, args, **kwargs)

    setattr(sql, _PATCHED, True)
    return sql
