"""Auto Loader (`spark.readStream.format("cloudFiles")`) on local Spark.

`install` patches `DataStreamReader` (classic, and Spark Connect for the warm engine) once
per process (starting the session does it), so notebooks and pipeline sources read a landing
folder as on Databricks:

    spark.readStream.format("cloudFiles")
        .option("cloudFiles.format", "json")
        .option("cloudFiles.schemaLocation", "/Volumes/c/s/v/_schemas/trips")
        .load("/Volumes/c/s/landing/trips")

Every other format goes to Spark unchanged. How it works: Spark's own file stream source
lists the folder, and the query's checkpoint records which files each micro-batch took, so
each file is processed exactly once across runs (a run killed mid-way takes its unfinished
batch again; a Delta sink, or `foreachBatch` writing with Delta's `txnAppId`/`txnVersion`,
makes that replay idempotent). JSON files are read as text and parsed with `from_json`, CSV
files whole and parsed with Python's `csv` module, so fields the schema does not have, or
values that do not parse as its types, are caught for the rescued data column; other formats
use Spark's reader with the stored schema.

Options, as on Databricks: `cloudFiles.format` (json, csv, xml, parquet, avro, orc, text,
binaryFile), `cloudFiles.schemaLocation` (the inferred schema is kept there, versioned like
Auto Loader's `_schemas/0`, `_schemas/1`...), `cloudFiles.inferColumnTypes` (JSON and CSV
columns are strings unless true), `cloudFiles.schemaEvolutionMode` (`addNewColumns`, the
default without a given schema; `rescue`; `none`, the default with `.schema(...)`;
`failOnNewColumns`), `cloudFiles.schemaHints`, `cloudFiles.maxFilesPerTrigger` (default
1000), `cloudFiles.maxBytesPerTrigger`, `cloudFiles.partitionColumns` (values read from
`key=value` folders), `cloudFiles.cleanSource` (`OFF`, `DELETE`, `MOVE` with
`cloudFiles.cleanSource.moveDestination`). Options without the `cloudFiles.` prefix
(`header`, `sep`, `multiLine`, `timestampFormat`, `rescuedDataColumn`,
`pathGlobFilter`...) go to the format's reader. An unknown `cloudFiles.*` option fails,
naming it.

What differs from Databricks' Auto Loader:

- Directory listing only: every stream start and every trigger lists the whole folder
  (Spark's file source), so the cost grows with the number of files; file notification mode
  and managed file events (`cloudFiles.useNotifications`, `useManagedFileEvents`, the queue
  and cloud credential options, `backfillInterval`) are accepted, warned about and ignored.
- Schema evolution (`addNewColumns`): new columns in files already in the folder when the
  stream starts are added to the stored schema right away (Databricks fails the stream once
  and takes them on restart); a file that arrives while the stream runs and brings a new
  top-level column fails the micro-batch before it commits, with `UNKNOWN_FIELDS` and the
  column names in the message (`is_schema_change`), and the next start adds it: the same
  "fail once, pick it up on restart" as Databricks, which also updates the schema before
  failing. Only top-level JSON and CSV fields are checked while the stream runs; new nested
  JSON fields and new Parquet/ORC/Avro/XML columns are added at the next start only.
- Rescued data: for JSON and CSV, `_rescued_data` holds the top-level fields the schema does
  not have (in `rescue` mode) and values that do not parse as their column's type, as a JSON
  object with `_file_path` (a `file:` URI here, `dbfs:` on Databricks); nested mismatches,
  column names differing only in case and whole malformed records are not rescued
  (malformed records go to `columnNameOfCorruptRecord` when the schema has that column, as
  Spark's JSON reader does). For other formats the column exists but stays null.
- CSV: files are read whole (one file must fit in memory) as UTF-8; `sep`/`delimiter`,
  `quote`, `escape`, `header`, `comment`, `nullValue` are honoured; typed columns are cast
  with `try_cast` (`timestampFormat`/`dateFormat` when given).
- Schema inference samples up to `spark.databricks.cloudFiles.schemaInference.sampleSize.
  numFiles` (default 1000) new files per start; the files already looked at are listed in
  `<schemaLocation>/_meshops/inferred_files`. Schema hints apply to top-level columns. In a
  pipeline the schema location may be left out: the session setting `MANAGED_SCHEMAS` names
  the folder the local pipeline keeps them in.
- Glob patterns in the path: Spark's file source expands them; the schema inference lists
  them with Python's `glob`, which has no `{a,b}` alternatives.
- `cloudFiles.includeExistingFiles=false` is refused (the folder's files are all new to a new
  checkpoint); `allowOverwrites`: a file rewritten under the same name is not read again;
  `maxFileAge` and `cleanSource.retentionDuration` are ignored with a warning (`DELETE` and
  `MOVE` clean a file right after the batch that read it commits).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import glob
import hashlib
import io
import json
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from meshops.errors import InvalidInput

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

FORMAT = "cloudfiles"
RESCUED_DATA = "_rescued_data"
SCHEMA_CHANGE = "UNKNOWN_FIELDS"
"""In the message of a micro-batch that met new columns: restart the stream to take them."""
_RAISED = re.compile(
    r"\[USER_RAISED_EXCEPTION\] (\[" + SCHEMA_CHANGE + r"\] Auto Loader on [^\n]*?)"
    r"(?: SQLSTATE: \w+)?(?:\n|$)"
)
MANAGED_SCHEMAS = "meshops.autoloader.managedSchemaLocation"
"""Session setting: the folder of schema locations for streams that name none (a pipeline's
own, as Lakeflow manages them); each stream gets a subfolder named after its path and format."""
SAMPLE_FILES_CONF = "spark.databricks.cloudFiles.schemaInference.sampleSize.numFiles"
DEFAULT_MAX_FILES = "1000"

Evolution = Literal["addNewColumns", "rescue", "none", "failOnNewColumns"]
_EVOLUTION: dict[str, Evolution] = {
    "addnewcolumns": "addNewColumns",
    "rescue": "rescue",
    "none": "none",
    "failonnewcolumns": "failOnNewColumns",
}
_FORMATS = {
    "json": "json",
    "csv": "csv",
    "xml": "xml",
    "parquet": "parquet",
    "avro": "avro",
    "orc": "orc",
    "text": "text",
    "binaryfile": "binaryFile",
}
_FIXED_SCHEMA = {"text", "binaryFile"}
_OPTIONS = (
    *("cloudFiles.format", "cloudFiles.schemaLocation", "cloudFiles.inferColumnTypes"),
    *("cloudFiles.schemaEvolutionMode", "cloudFiles.schemaHints"),
    *("cloudFiles.maxFilesPerTrigger", "cloudFiles.maxBytesPerTrigger"),
    *("cloudFiles.partitionColumns", "cloudFiles.cleanSource"),
    *("cloudFiles.cleanSource.moveDestination", "cloudFiles.includeExistingFiles"),
    *("cloudFiles.allowOverwrites", "cloudFiles.validateOptions"),
)
_SPELLED = {name.lower(): name for name in _OPTIONS}
_SUPPORTED = set(_SPELLED)
_IGNORED = {
    # file notification mode and its cloud resources: locally the folder is always listed
    *("cloudfiles.usenotifications", "cloudfiles.usemanagedfileevents"),
    *("cloudfiles.backfillinterval", "cloudfiles.useincrementallisting"),
    *("cloudfiles.fetchparallelism", "cloudfiles.pathrewrites", "cloudfiles.resourcetag"),
    *("cloudfiles.queueurl", "cloudfiles.region", "cloudfiles.connectionstring"),
    *("cloudfiles.resourcegroup", "cloudfiles.subscriptionid", "cloudfiles.tenantid"),
    *("cloudfiles.clientid", "cloudfiles.clientsecret", "cloudfiles.projectid"),
    *("cloudfiles.subscription", "cloudfiles.awsaccesskey", "cloudfiles.awssecretkey"),
    *("cloudfiles.rolearn", "cloudfiles.roleexternalid", "cloudfiles.rolesessionname"),
    *("cloudfiles.stsendpoint", "cloudfiles.restrictnotificationsetuptosameawsaccountid"),
    *("cloudfiles.maxfileage", "cloudfiles.cleansource.retentionduration"),
    "cloudfiles.usestrictglobber",
}
_HIDDEN = ("_", ".")
_GLOB = re.compile(r"[*?\[{]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_SCHEMAS = "_schemas"
_BOOK = "_meshops"
_INFERRED = "inferred_files"
_HEADER_LINES = 64
"""Lines read to find a CSV file's header (a quoted header name may hold line breaks)."""


class AutoLoaderError(InvalidInput):
    """An Auto Loader stream that cannot start as written; the message says which option."""


class AutoLoaderIgnored(UserWarning):
    """A `cloudFiles.*` option that Databricks honours and the local Auto Loader does not."""


# ---- options -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoLoaderOptions:
    """What one `cloudFiles` stream was asked for."""

    path: str
    file_format: str
    schema_location: str | None
    infer_column_types: bool
    evolution: Evolution
    schema_hints: str | None
    partition_columns: tuple[str, ...]
    rescued_column: str | None
    reader: dict[str, str]
    """Options for the format's reader (no `cloudFiles.` prefix), as given."""
    source: dict[str, str] = field(default_factory=dict)
    """Options for Spark's file stream source (batch sizes, cleaning)."""

    @classmethod
    def parse(
        cls, path: str, options: Mapping[str, str], schema: StructType | None
    ) -> AutoLoaderOptions:
        lowered = {k.lower(): (k, v) for k, v in options.items()}
        cloud = {k: v for k, (_, v) in lowered.items() if k.startswith("cloudfiles.")}
        reader = {k: v for k, v in options.items() if not k.lower().startswith("cloudfiles.")}
        unknown = sorted(lowered[k][0] for k in cloud if k not in _SUPPORTED | _IGNORED)
        if unknown:
            raise AutoLoaderError(
                f"Auto Loader on {path}: unknown option {', '.join(unknown)}; known cloudFiles "
                f"options: {', '.join(_OPTIONS)} (and the file notification ones)"
            )
        for key in sorted(k for k in cloud if k in _IGNORED):
            warnings.warn(
                f"Auto Loader on {path}: {lowered[key][0]} has no effect locally "
                "(the folder is listed on every trigger; see meshops.engine.autoloader)",
                AutoLoaderIgnored,
                stacklevel=4,
            )
        given = cloud.get("cloudfiles.format")
        if given is None:
            raise AutoLoaderError(
                f"Auto Loader on {path}: set cloudFiles.format (one of {', '.join(_FORMATS)})"
            )
        file_format = _FORMATS.get(given.lower())
        if file_format is None:
            raise AutoLoaderError(
                f"Auto Loader on {path}: cloudFiles.format is {given!r}; expected one of "
                f"{', '.join(_FORMATS.values())}"
            )
        mode_given = cloud.get("cloudfiles.schemaevolutionmode")
        default_mode: Evolution = "none" if schema is not None else "addNewColumns"
        evolution = _EVOLUTION.get((mode_given or default_mode).lower())
        if evolution is None:
            raise AutoLoaderError(
                f"Auto Loader on {path}: cloudFiles.schemaEvolutionMode is {mode_given!r}; "
                "expected addNewColumns, rescue, none or failOnNewColumns"
            )
        if schema is not None and evolution == "addNewColumns":
            raise AutoLoaderError(
                f"Auto Loader on {path}: schemaEvolutionMode addNewColumns needs an inferred "
                "schema: drop .schema(...) (use cloudFiles.schemaHints) or choose another mode"
            )
        if _flag(path, cloud, "cloudfiles.includeexistingfiles", default=True) is False:
            raise AutoLoaderError(
                f"Auto Loader on {path}: cloudFiles.includeExistingFiles=false is not supported "
                "locally; move the files already there out of the folder instead"
            )
        if _flag(path, cloud, "cloudfiles.allowoverwrites", default=False):
            warnings.warn(
                f"Auto Loader on {path}: cloudFiles.allowOverwrites: a file rewritten under the "
                "same name is not read again locally",
                AutoLoaderIgnored,
                stacklevel=4,
            )
        rescued = next((v for k, v in reader.items() if k.lower() == "rescueddatacolumn"), None)
        inferring = schema is None and file_format not in _FIXED_SCHEMA
        if rescued is None and inferring and evolution != "none":
            rescued = RESCUED_DATA
        partitions = tuple(
            p.strip() for p in cloud.get("cloudfiles.partitioncolumns", "").split(",") if p.strip()
        )
        return cls(
            path=path,
            file_format=file_format,
            schema_location=cloud.get("cloudfiles.schemalocation"),
            infer_column_types=bool(_flag(path, cloud, "cloudfiles.infercolumntypes", False)),
            evolution=evolution,
            schema_hints=cloud.get("cloudfiles.schemahints"),
            partition_columns=partitions,
            rescued_column=rescued,
            reader=reader,
            source=_source_options(path, cloud),
        )

    def option(self, name: str, default: str | None = None) -> str | None:
        """A reader option, its name case-insensitive as Spark's are."""
        return next((v for k, v in self.reader.items() if k.lower() == name.lower()), default)

    @property
    def rescues_new_columns(self) -> bool:
        """New top-level fields go to the rescued column (rather than failing the batch)."""
        return self.rescued_column is not None and self.evolution in ("rescue", "none")


def _flag(path: str, cloud: Mapping[str, str], key: str, default: bool) -> bool:
    value = cloud.get(key)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise AutoLoaderError(
            f"Auto Loader on {path}: {_SPELLED[key]} is {value!r}; expected true or false"
        )
    return value.lower() == "true"


def _source_options(path: str, cloud: Mapping[str, str]) -> dict[str, str]:
    """Spark file stream source settings for the batch size and the cleaning of read files."""
    out: dict[str, str] = {}
    files, size = (
        cloud.get("cloudfiles.maxfilespertrigger"),
        cloud.get("cloudfiles.maxbytespertrigger"),
    )
    for key, value in (("maxFilesPerTrigger", files), ("maxBytesPerTrigger", size)):
        if value is not None and not (value.isdigit() and int(value) > 0):
            raise AutoLoaderError(
                f"Auto Loader on {path}: cloudFiles.{key} is {value!r}; expected a positive "
                "whole number"
            )
    if files is not None and size is not None:
        warnings.warn(
            f"Auto Loader on {path}: local Spark takes maxFilesPerTrigger or maxBytesPerTrigger, "
            "not both: batches are cut by maxFilesPerTrigger",
            AutoLoaderIgnored,
            stacklevel=5,
        )
        size = None
    if size is not None:
        out["maxBytesPerTrigger"] = size
    else:
        out["maxFilesPerTrigger"] = files or DEFAULT_MAX_FILES
    clean = cloud.get("cloudfiles.cleansource", "OFF").upper()
    if clean == "DELETE":
        out["cleanSource"] = "delete"
    elif clean == "MOVE":
        destination = cloud.get("cloudfiles.cleansource.movedestination")
        if not destination:
            raise AutoLoaderError(
                f"Auto Loader on {path}: cloudFiles.cleanSource MOVE needs "
                "cloudFiles.cleanSource.moveDestination"
            )
        out.update(cleanSource="archive", sourceArchiveDir=destination)
    elif clean != "OFF":
        raise AutoLoaderError(
            f"Auto Loader on {path}: cloudFiles.cleanSource is {clean!r}; expected OFF, DELETE "
            "or MOVE"
        )
    return out


# ---- paths -------------------------------------------------------------------------------


def _local(path: str) -> Path:
    """The file of this machine a Databricks path stands for (`/Volumes`, `dbfs:`, `file:`)."""
    from meshops.engine import paths, session

    options = session.active_options()
    if options is not None:
        mapped = paths.local_path(path, options.state)
        if mapped is not None:
            return mapped
    if path.startswith("file:"):
        return Path(re.sub(r"^file:/*", "/", path))
    if _SCHEME.match(path):
        raise AutoLoaderError(
            f"Auto Loader on {path}: only local folders, /Volumes/... and dbfs:/ paths are "
            "readable locally"
        )
    return Path(path).absolute()


def _visible(name: str) -> bool:
    return not name.startswith(_HIDDEN)


def _files(path: str) -> dict[str, Path]:
    """The data files under `path` (folders walked, glob patterns expanded; names starting with
    `_` or `.` skipped, as Spark's file source does), by their path relative to `path`'s
    fixed part."""
    local = _local(path)
    text = str(local)
    found: dict[str, Path] = {}
    if _GLOB.search(text):
        base = Path(text[: _GLOB.search(text).start()]).parent  # type: ignore[union-attr]
        roots = [Path(p) for p in sorted(glob.glob(text))]  # noqa: PTH207 - absolute pattern
    else:
        base, roots = local, [local]
    for root in roots:
        if root.is_file():
            found[root.relative_to(base).as_posix() if root != base else root.name] = root
            continue
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if _visible(d))
            for name in sorted(names):
                if _visible(name):
                    file = Path(folder) / name
                    found[file.relative_to(base).as_posix()] = file
    return found


# ---- the schema location -----------------------------------------------------------------


class SchemaStore:
    """Versions of a stream's schema under `<schemaLocation>/_schemas/<n>` (Auto Loader's
    layout: a `v1` line, then JSON with the data and partition schemas), and the files whose
    schema was looked at (`_meshops/inferred_files`)."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.root = _local(location)

    @property
    def folder(self) -> Path:
        return self.root / _SCHEMAS

    def versions(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(p.name) for p in self.folder.iterdir() if p.name.isdigit())

    def latest(self) -> tuple[int, StructType, StructType] | None:
        """The newest version: its number, data schema and partition schema."""
        from pyspark.sql.types import StructType

        versions = self.versions()
        if not versions:
            return None
        file = self.folder / str(versions[-1])
        lines = file.read_text(encoding="utf-8").splitlines()
        try:
            if lines[0].strip() != "v1":
                raise ValueError(f"first line {lines[0]!r}, expected v1")
            body = json.loads(lines[1])
            data = StructType.fromJson(json.loads(body["dataSchemaJson"]))
            parts = StructType.fromJson(json.loads(body.get("partitionSchemaJson") or "{}"))
        except (IndexError, KeyError, ValueError) as exc:
            raise AutoLoaderError(
                f"{file}: not an Auto Loader schema file ({exc}); remove the schema location "
                "to infer the schema again"
            ) from None
        return versions[-1], data, parts

    def write(self, data: StructType, partitions: StructType) -> int:
        """Store a new version; returns its number."""
        self.folder.mkdir(parents=True, exist_ok=True)
        body = {"dataSchemaJson": data.json(), "partitionSchemaJson": partitions.json()}
        text = "v1\n" + json.dumps(body) + "\n"
        while True:
            number = (self.versions() or [-1])[-1] + 1
            try:
                fd = os.open(self.folder / str(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:  # another stream wrote it first: take the next number
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            return number

    def inferred(self) -> set[str]:
        file = self.root / _BOOK / _INFERRED
        if not file.is_file():
            return set()
        return {line for line in file.read_text(encoding="utf-8").splitlines() if line}

    def add_inferred(self, names: Sequence[str]) -> None:
        if not names:
            return
        file = self.root / _BOOK / _INFERRED
        file.parent.mkdir(parents=True, exist_ok=True)
        with file.open("a", encoding="utf-8") as handle:
            handle.writelines(name + "\n" for name in names)


# ---- schemas -----------------------------------------------------------------------------


def _merge(old: StructType, new: StructType) -> StructType:
    """`old` with the fields only `new` has appended (nested structs too); `old`'s types win."""
    from pyspark.sql.types import StructField, StructType

    fields = []
    have = {f.name: f for f in new.fields}
    for f in old.fields:
        other = have.get(f.name)
        if isinstance(f.dataType, StructType) and other and isinstance(other.dataType, StructType):
            fields.append(StructField(f.name, _merge(f.dataType, other.dataType), True, f.metadata))
        else:
            fields.append(f)
    known = {f.name for f in old.fields}
    fields += [
        StructField(f.name, f.dataType, True, f.metadata) for f in new if f.name not in known
    ]
    return StructType(fields)


def _hinted(
    options: AutoLoaderOptions, data: StructType, parts: StructType
) -> tuple[StructType, StructType]:
    """`cloudFiles.schemaHints` applied: hinted columns get their type, absent ones are added."""
    from pyspark.sql.types import DataType, StructField, StructType

    if not options.schema_hints:
        return data, parts
    try:
        hints = DataType.fromDDL(options.schema_hints)
    except Exception as exc:
        raise AutoLoaderError(
            f"Auto Loader on {options.path}: cloudFiles.schemaHints {options.schema_hints!r} "
            f"is not a list of `name TYPE`: {_first_line(exc)}"
        ) from None
    assert isinstance(hints, StructType)
    wanted = {f.name: f for f in hints.fields}

    def hinted(schema: StructType) -> StructType:
        return StructType(
            [
                StructField(f.name, wanted[f.name].dataType, True) if f.name in wanted else f
                for f in schema
            ]
        )

    data, parts = hinted(data), hinted(parts)
    present = {*data.names, *parts.names}
    extra = [StructField(f.name, f.dataType, True) for f in hints if f.name not in present]
    return StructType([*data.fields, *extra]), parts


def _infer(spark: SparkSession, options: AutoLoaderOptions, files: Sequence[Path]) -> StructType:
    """The schema Spark's reader infers from `files`, JSON and CSV as strings unless asked."""
    from pyspark.sql.types import StringType, StructField, StructType

    reader = spark.read.format(options.file_format).options(**options.reader)
    names = [str(f) for f in files]
    if options.file_format == "json":
        reader = reader.option("primitivesAsString", str(not options.infer_column_types).lower())
        schema = reader.load(names).schema
        corrupt = options.option("columnNameOfCorruptRecord", "_corrupt_record")
        return StructType([f for f in schema if f.name != corrupt])
    if options.file_format == "csv":
        merged = StructType([])
        for group in _by_header(options, files):
            found = reader.option("inferSchema", str(options.infer_column_types).lower()).load(
                [str(f) for f in group]
            )
            merged = _merge(merged, found.schema)
        if not options.infer_column_types:
            merged = StructType([StructField(f.name, StringType(), True) for f in merged])
        return merged
    if options.file_format in ("parquet", "orc"):
        reader = reader.option("mergeSchema", "true")
    return reader.load(names).schema


def _by_header(options: AutoLoaderOptions, files: Sequence[Path]) -> list[list[Path]]:
    """CSV files grouped by their header line: Spark infers from the first file's header."""
    if _CsvParser.of(options).header is False:
        return [list(files)]
    groups: dict[tuple[str, ...], list[Path]] = {}
    parser = _CsvParser.of(options)
    for file in files:
        with file.open(encoding="utf-8", newline="") as handle:
            head = "".join(handle.readline() for _ in range(_HEADER_LINES))
        groups.setdefault(tuple(parser.header_of(head)), []).append(file)
    return list(groups.values())


def resolve_schema(
    spark: SparkSession, options: AutoLoaderOptions, given: StructType | None
) -> tuple[StructType, StructType]:
    """The data and partition schemas the stream reads with, stored at the schema location.

    Without a given schema: the stored one (inferred from the folder's files at the first
    start), with the new columns of files not looked at before added in `addNewColumns`
    mode, refused in `failOnNewColumns` mode, and the hints applied.
    """
    from pyspark.sql.types import StringType, StructField, StructType

    if options.file_format in _FIXED_SCHEMA:
        return _fixed_schema(options), StructType([])
    parts = StructType([StructField(p, StringType(), True) for p in options.partition_columns])
    if given is not None:
        return _hinted(options, given, parts)
    if not options.schema_location:
        raise AutoLoaderError(
            f"Auto Loader on {options.path}: set cloudFiles.schemaLocation to infer the schema "
            "(or give one with .schema(...))"
        )
    store = SchemaStore(options.schema_location)
    stored = store.latest()
    files = _files(options.path)
    looked = store.inferred()
    limit = int(spark.conf.get(SAMPLE_FILES_CONF, "1000") or "1000")
    new = sorted(name for name in files if name not in looked)[:limit]
    if stored is None:
        if not new:
            raise AutoLoaderError(
                f"Auto Loader on {options.path}: no files to infer the schema from; add files "
                "or give the schema with .schema(...) (Databricks fails the same way)"
            )
        data = _infer(spark, options, [files[n] for n in new])
        data, parts = _hinted(options, data, parts)
        store.write(data, parts)
        store.add_inferred(new)
        return data, parts
    _, data, stored_parts = stored
    parts = _merge(stored_parts, parts)
    if new and options.evolution in ("addNewColumns", "failOnNewColumns"):
        found = _infer(spark, options, [files[n] for n in new])
        merged = _merge(data, found)
        added = [f.name for f in merged if f.name not in data.names]
        if added and options.evolution == "failOnNewColumns":
            raise AutoLoaderError(
                f"Auto Loader on {options.path}: new columns {added} and schemaEvolutionMode "
                "failOnNewColumns: add them to the schema (cloudFiles.schemaHints) or remove "
                "the files that bring them"
            )
        data = merged
        store.add_inferred(new)
    hinted, parts = _hinted(options, data, parts)
    if (hinted, parts) != (stored[1], stored[2]):
        store.write(hinted, parts)
    return hinted, parts


def _fixed_schema(options: AutoLoaderOptions) -> StructType:
    from pyspark.sql.types import (
        BinaryType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    if options.file_format == "text":
        return StructType([StructField("value", StringType(), True)])
    return StructType(
        [
            StructField("path", StringType(), True),
            StructField("modificationTime", TimestampType(), True),
            StructField("length", LongType(), True),
            StructField("content", BinaryType(), True),
        ]
    )


# ---- the stream --------------------------------------------------------------------------


MANAGED_SCHEMAS = "meshops.autoloader.managedSchemas"
"""Session setting: the folder where streams without `cloudFiles.schemaLocation` keep their
schema (a pipeline update sets it: Lakeflow manages the schema location of its flows)."""


def load(
    spark: SparkSession,
    path: str | None,
    options: Mapping[str, str],
    schema: StructType | str | None = None,
) -> DataFrame:
    """The streaming DataFrame of `spark.readStream.format("cloudFiles")...load(path)`."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DataType, StructType

    if not path:
        raise AutoLoaderError("Auto Loader: give the folder to read: .load('/Volumes/...')")
    given = DataType.fromDDL(schema) if isinstance(schema, str) else schema
    assert given is None or isinstance(given, StructType)
    if not _SCHEME.match(path) and not path.startswith("/"):
        path = str(Path(path).absolute())
    opts = AutoLoaderOptions.parse(path, options, given)
    managed = spark.conf.get(MANAGED_SCHEMAS, None)
    if opts.schema_location is None and managed:
        digest = hashlib.sha256(f"{opts.file_format}:{path}".encode()).hexdigest()[:16]
        opts = dataclasses.replace(opts, schema_location=f"{managed.rstrip('/')}/{digest}")
    managed = spark.conf.get(MANAGED_SCHEMAS, None)
    if opts.schema_location is None and managed:
        # in a pipeline the schema location is the pipeline's to keep, as in Lakeflow
        key = hashlib.sha256(path.encode()).hexdigest()[:16]
        opts = dataclasses.replace(opts, schema_location=f"{managed}/{key}")
    data, parts = resolve_schema(spark, opts, given)
    data = _struct([f for f in data if f.name != opts.rescued_column])  # computed, not read
    if opts.file_format == "json":
        frame = _json_stream(spark, opts, data)
    elif opts.file_format == "csv":
        frame = _csv_stream(spark, opts, data)
    else:
        frame = _native_stream(spark, opts, data)
    frame = _with_partitions(frame, parts)
    if opts.rescued_column is not None and parts.fields:  # the rescued data comes last
        rest = [F.col(_quote(c)) for c in frame.columns if c != opts.rescued_column]
        frame = frame.select(*rest, F.col(_quote(opts.rescued_column)))
    return frame


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _file_stream(spark: SparkSession, options: AutoLoaderOptions, source: str) -> Any:
    reader = spark.readStream.format(source)
    reader = reader.options(**options.reader).options(**options.source)
    return reader


def _native_stream(spark: SparkSession, options: AutoLoaderOptions, data: StructType) -> DataFrame:
    from pyspark.sql import functions as F

    reader = _file_stream(spark, options, options.file_format).schema(data)
    frame = _original_load(reader, options.path)
    if options.rescued_column is not None:
        frame = frame.withColumn(options.rescued_column, F.lit(None).cast("string"))
    return frame


def _json_stream(spark: SparkSession, options: AutoLoaderOptions, data: StructType) -> DataFrame:
    """JSON as text: each line (or whole file with multiLine) parsed twice, into the schema and
    into a map of every field, whose difference is the rescued data."""
    from pyspark.sql import functions as F

    whole = (options.option("multiLine", "false") or "false").lower() == "true"
    reader = _file_stream(spark, options, "text").option("wholetext", str(whole).lower())
    text = _original_load(reader, options.path)
    value = F.col("value")
    records = F.when(F.ltrim(value).startswith("["), F.from_json(value, "array<string>"))
    rows = text.select(
        F.explode(records.otherwise(F.array(value))).alias("__record"),
        F.col("_metadata.file_path").alias("__file"),
    ).where(F.trim(F.col("__record")) != "")
    corrupt = options.option("columnNameOfCorruptRecord", "_corrupt_record")
    fields = [f for f in data if f.name != corrupt]
    parsed_schema = _struct(fields)
    rows = rows.select(
        "__record",
        "__file",
        F.from_json("__record", parsed_schema, _json_options(options)).alias("__typed"),
        F.from_json("__record", "map<string,variant>").alias("__raw"),
    )

    def present(name: str) -> Column:
        raw = F.col("__raw")[name]
        return raw.isNotNull() & ~F.is_variant_null(raw)

    columns = [F.col("__typed")[f.name].alias(f.name) for f in fields]
    if corrupt in data.names:
        columns.insert(
            data.names.index(corrupt),
            F.when(F.col("__raw").isNull(), F.col("__record")).alias(corrupt),
        )
    return _finish(options, data, rows, columns, present, F.col("__file").cast("variant"))


def _json_options(options: AutoLoaderOptions) -> dict[str, str]:
    """Reader options `from_json` takes (it parses records, not files, and is permissive)."""
    skipped = {"mode", "multiline", "rescueddatacolumn", "pathglobfilter", "recursivefilelookup"}
    return {k: v for k, v in options.reader.items() if k.lower() not in skipped}


def _csv_stream(spark: SparkSession, options: AutoLoaderOptions, data: StructType) -> DataFrame:
    """CSV files whole, each parsed by `_CsvParser` into maps of header name to text, cast to
    the schema's types; what does not cast is rescued."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, MapType, StringType

    reader = _file_stream(spark, options, "text").option("wholetext", "true")
    text = _original_load(reader, options.path)
    kind = ArrayType(MapType(StringType(), StringType()))
    parse = F.udf(_CsvParser.of(options), kind, useArrow=False)
    rows = text.select(
        F.explode(parse(F.col("value"))).alias("__raw"),
        F.col("_metadata.file_path").alias("__file"),
    )
    columns = [_cast(F.col("__raw")[f.name], f.dataType, options).alias(f.name) for f in data]

    def present(name: str) -> Column:
        return F.col("__raw")[name].isNotNull()

    return _finish(options, data, rows, columns, present, F.col("__file"))


def _cast(text: Column, kind: Any, options: AutoLoaderOptions) -> Column:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, StringType, TimestampNTZType, TimestampType

    if isinstance(kind, StringType):
        return text
    stamp = options.option("timestampFormat")
    if isinstance(kind, TimestampType | TimestampNTZType) and stamp:
        return F.try_to_timestamp(text, F.lit(stamp)).cast(kind)
    day = options.option("dateFormat")
    if isinstance(kind, DateType) and day:
        return F.try_to_date(text, day)
    return text.try_cast(kind)


def _finish(
    options: AutoLoaderOptions,
    data: StructType,
    rows: DataFrame,
    columns: list[Column],
    present: Callable[[str], Column],
    file: Column,
) -> DataFrame:
    """The schema's columns and the rescued data; a batch with new fields fails when the
    evolution mode says so."""
    from pyspark.sql import functions as F

    names = [f.name for f in data]
    known = F.array(*[F.lit(n) for n in names]) if names else F.array().cast("array<string>")
    raw = F.col("__raw")
    new_keys = F.filter(F.map_keys(raw), lambda k: ~F.array_contains(known, k))
    if options.evolution in ("addNewColumns", "failOnNewColumns"):
        why = (
            "restart the stream: the schema gets them at the next start"
            if options.evolution == "addNewColumns"
            else "schemaEvolutionMode failOnNewColumns: add them to cloudFiles.schemaHints or "
            "remove the file"
        )
        message = F.concat(
            F.lit(f"[{SCHEMA_CHANGE}] Auto Loader on {options.path}: new columns "),
            F.array_join(new_keys, ", "),
            F.lit(" in "),
            F.col("__file"),
            F.lit(f"; {why}"),
        )
        check = F.when(F.coalesce(F.size(new_keys), F.lit(0)) > 0, F.raise_error(message))
        rows = rows.where(check.otherwise(F.lit(True)).cast("boolean"))
    selected = rows.select(*columns, raw.alias("__raw"), F.col("__file"))
    if options.rescued_column is None:
        return selected.drop("__raw", "__file")
    typed = {f.name: F.col(f.name) for f in data}
    mismatched = F.array_compact(
        F.array(*[F.when(present(n) & typed[n].isNull(), F.lit(n)) for n in names])
        if names
        else F.array().cast("array<string>")
    )
    rescue_new = options.rescues_new_columns

    def rescued(k: Column, v: Column) -> Column:
        extra = ~F.array_contains(known, k) if rescue_new else F.lit(False)
        return extra | F.array_contains(mismatched, k)

    kept = F.map_filter(raw, rescued)
    with_file = F.map_concat(kept, F.create_map(F.lit("_file_path"), file))
    value = F.when(F.size(kept) > 0, F.to_json(with_file))
    return selected.withColumn(options.rescued_column, value).drop("__raw", "__file")


def _with_partitions(frame: DataFrame, parts: StructType) -> DataFrame:
    """Partition columns from the `name=value` folders of each row's file."""
    from pyspark.sql import functions as F

    for f in parts:
        value = F.regexp_extract(F.col("_metadata.file_path"), f"/{re.escape(f.name)}=([^/]*)/", 1)
        text = F.when(value != "", F.url_decode(value))
        frame = frame.withColumn(f.name, text.try_cast(f.dataType))
    return frame


def _struct(fields: Sequence[Any]) -> StructType:
    from pyspark.sql.types import StructType

    return StructType(list(fields))


# ---- CSV ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CsvParser:
    """Parses one CSV file's text into a map per record: header name (or `_c<i>`) to text.

    Runs in Spark's Python workers (a UDF), so it is a plain picklable object.
    """

    sep: str = ","
    quote: str = '"'
    escape: str | None = "\\"
    header: bool = False
    comment: str | None = None
    null_value: str = ""

    @classmethod
    def of(cls, options: AutoLoaderOptions) -> _CsvParser:
        sep = options.option("sep") or options.option("delimiter") or ","
        return cls(
            sep=sep.encode().decode("unicode_escape") if sep.startswith("\\") else sep,
            quote=options.option("quote", '"') or '"',
            escape=options.option("escape", "\\") or None,
            header=(options.option("header", "false") or "false").lower() == "true",
            comment=options.option("comment") or None,
            null_value=options.option("nullValue", "") or "",
        )

    def _reader(self, text: str) -> Iterator[list[str]]:
        lines: Iterator[str] = io.StringIO(text, newline="")
        if self.comment:
            lines = (line for line in lines if not line.startswith(self.comment))
        return csv.reader(
            lines,
            delimiter=self.sep,
            quotechar=self.quote,
            escapechar=self.escape,
            doublequote=True,
            strict=False,
        )

    def header_of(self, text: str) -> list[str]:
        if not self.header:
            return []
        return next(iter(self._reader(text)), [])

    def __call__(self, text: str | None) -> list[dict[str, str | None]]:
        if text is None:
            return []
        records = self._reader(text)
        names: list[str] = []
        if self.header:
            names = next(records, [])
        out = []
        for record in records:
            if not record or record == [""]:
                continue  # blank lines
            row: dict[str, str | None] = {}
            for i, value in enumerate(record):
                name = names[i] if i < len(names) else f"_c{i}"
                row[name] = None if value in ("", self.null_value) else value
            out.append(row)
        return out


# ---- the patch ---------------------------------------------------------------------------

_lock = threading.Lock()
_PATCHED = "__meshops_autoloader__"
_RECORD = "_meshops_stream_reader"


@dataclass
class _Recorded:
    """What a `DataStreamReader` was told so far (Spark keeps it in the JVM)."""

    source: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    schema: StructType | str | None = None


def _record(reader: Any) -> _Recorded:
    found = reader.__dict__.get(_RECORD)
    if found is None:
        found = reader.__dict__[_RECORD] = _Recorded()
    return found  # type: ignore[no-any-return]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _original_load(reader: Any, path: str) -> DataFrame:
    load_ = type(reader).load
    return getattr(load_, "__wrapped__", load_)(reader, path)  # type: ignore[no-any-return]


def _reader_classes() -> list[type]:
    from pyspark.sql.streaming.readwriter import DataStreamReader

    classes: list[type] = [DataStreamReader]
    try:  # Spark Connect's client is optional; the warm engine's sessions use it
        from pyspark.sql.connect.streaming.readwriter import DataStreamReader as ConnectReader
    except ImportError:
        return classes
    classes.append(ConnectReader)
    return classes


def install() -> None:
    """Make `spark.readStream.format("cloudFiles")` the local Auto Loader (idempotent).

    Patches the classic and the Spark Connect `DataStreamReader`: `format`, `option`,
    `options` and `schema` note what they are told, and `load` of a `cloudFiles` reader of
    a local or warm meshops session calls `load` of this module. A remote session's reader
    (Spark Connect elsewhere, Databricks Connect) is left alone: its server has Auto Loader.
    """
    with _lock:
        for kind in _reader_classes():
            if getattr(getattr(kind, "load", None), _PATCHED, False):
                continue
            for name, make in (
                ("format", _patched_format),
                ("option", _patched_option),
                ("options", _patched_options),
                ("schema", _patched_schema),
                ("load", _patched_load),
            ):
                original = getattr(kind, name)
                wrapper = make(original)
                functools.update_wrapper(wrapper, original)
                setattr(wrapper, _PATCHED, True)
                setattr(kind, name, wrapper)


def installed() -> bool:
    """Whether `install` patched the readers of this process."""
    return all(getattr(getattr(k, "load", None), _PATCHED, False) for k in _reader_classes())


def _is_cloudfiles(source: str | None) -> bool:
    return isinstance(source, str) and source.lower() == FORMAT


def _session(reader: Any) -> SparkSession | None:
    """The session of a reader when meshops runs it on this machine (local or warm)."""
    from meshops.engine import session

    spark = getattr(reader, "_spark", None) or getattr(reader, "_client", None)
    if spark is None or session.mode(spark) not in ("local", "warm"):
        return None
    return spark  # type: ignore[no-any-return]


def _patched_format(original: Callable[..., Any]) -> Callable[..., Any]:
    def format(self: Any, source: str) -> Any:
        _record(self).source = source
        return original(self, source)

    return format


def _patched_option(original: Callable[..., Any]) -> Callable[..., Any]:
    def option(self: Any, key: str, value: Any) -> Any:
        text = _text(value)
        if text is not None:
            _record(self).options[key] = text
        return original(self, key, value)

    return option


def _patched_options(original: Callable[..., Any]) -> Callable[..., Any]:
    def options(self: Any, **given: Any) -> Any:
        for key, value in given.items():
            text = _text(value)
            if text is not None:
                _record(self).options[key] = text
        return original(self, **given)

    return options


def _patched_schema(original: Callable[..., Any]) -> Callable[..., Any]:
    def schema(self: Any, schema: Any) -> Any:
        _record(self).schema = schema
        return original(self, schema)

    return schema


def _patched_load(original: Callable[..., Any]) -> Callable[..., Any]:
    def load_(
        self: Any,
        path: str | None = None,
        format: str | None = None,
        schema: Any = None,
        **options: Any,
    ) -> Any:
        if format is not None:
            self.format(format)
        if schema is not None:
            self.schema(schema)
        if options:
            self.options(**options)
        recorded = _record(self)
        spark = _session(self)
        if spark is not None and _is_cloudfiles(recorded.source):
            return load(spark, path, recorded.options, recorded.schema)
        return original(self, path)

    return load_


def schema_change(error: BaseException) -> str | None:
    """The message of a stream stopped because files brought new columns, else None.

    Spark puts the failing task's message in the cause chain, not in the query's message (whose
    plan only shows the check's text); both the Python chain and the JVM's are searched.
    """
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(str(current))
        java = getattr(current, "_origin", None) or getattr(current, "java_exception", None)
        for _ in range(32):
            if java is None:
                break
            try:
                texts.append(str(java.getMessage()))
                java = java.getCause()
            except Exception:  # the JVM is gone: the Python text has to do
                break
        current = current.__cause__ or current.__context__
    for text in texts:
        found = _RAISED.search(text)
        if found is not None:
            return found.group(1)
    return None


def is_schema_change(error: BaseException) -> bool:
    """Whether a stream stopped because files brought new columns (restart it to take them)."""
    return schema_change(error) is not None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
