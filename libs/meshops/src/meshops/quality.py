"""Data-quality checks of job tasks: a YAML file next to the notebook, applied with DQX.

A task's notebook makes one call, unchanged locally and in a workspace:

    from meshops import quality
    valid, quarantined = quality.apply_checks(df, "checks/trips.yml")

- The file is databricks-labs-dqx's own format (a list of checks: `criticality`,
  `check: {function, arguments, for_each_column}`, `name`, `filter`, `user_metadata`,
  `message_expr`), so it also loads with DQX's own tools. meshops reads it as it reads every
  YAML file (hostile input refused, line numbers) and is stricter than DQX: unknown keys are
  errors (DQX ignores them, so a typo would silently drop a setting), and a check identical to
  an earlier one is an error. DQX then validates each check's function and arguments
  (`DQEngine.validate_checks`); every message names the file, the line, the check's index and
  key, and what was expected.
- The checks are applied by DQX's `DQEngine` (`apply_checks_by_metadata`, split with its
  `get_valid`/`get_invalid`): `valid` holds the rows without an error (rows with only warnings
  too), without result columns; `quarantined` the rows with an error or a warning, with DQX's
  `_errors` and `_warnings` columns. The checked rows are cached once (DQX's
  `persist_if_supported`), so counting and writing do not evaluate the checks again.
- Each run appends one row per check (DQX's per-check counts, `compute_summary_metrics`) to the
  Delta table `<catalog>.<flow schema>.dq_results`; the flow schema is the one the notebook's
  own brickops `dbname(db=<flow>)` gives, from the notebook's `dbutils` (its path and widgets).
  The rows carry DQX's run id, which every `_errors`/`_warnings` entry repeats. Quarantined rows
  are appended to a table the caller names, if it names one.
- `problems(flow_folder, repo_root)` validates every checks file of a flow without Spark, so
  `meshops validate` reports a bad file before anything runs.

A checks file is named `checks.yml`, `<name>.checks.yml`, or is any `.yml` in a `checks/`
folder (`.yaml` too); `problems` finds those in the flow folder (not under `tests/`, hidden or
data folders) and `apply_checks` accepts no other, so validation covers what runs.

DQX needs a Databricks `WorkspaceClient` even to apply checks to a DataFrame: its engine calls
`clusters.select_spark_version()` when it is built (to see the workspace answers) and again for
telemetry; nothing else of applying checks uses the workspace. In a workspace
(`DATABRICKS_RUNTIME_VERSION` set) the engine gets the notebook's own `WorkspaceClient()`. On
this machine there is no workspace: it gets `local_workspace_client`, a real `WorkspaceClient`
whose transport (databricks-sdk's `http_adapter`) answers those two read-only discovery calls
from the local Spark session and refuses every other call with `NoWorkspace`, so nothing leaves
the machine and anything more DQX might ask for fails loudly.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import requests
from pydantic import Field, ValidationError
from requests.adapters import BaseAdapter

from meshops import yamldoc
from meshops.context import find_repo_root
from meshops.errors import InvalidFiles, InvalidInput, MeshopsError, Problem, display_path, excerpt
from meshops.yamldoc import StrictModel

if TYPE_CHECKING:
    from databricks.labs.dqx.engine import DQEngine
    from databricks.labs.dqx.rule import DQRule
    from databricks.sdk import WorkspaceClient
    from pyspark.sql import DataFrame, SparkSession

CHECKS_FOLDER = "checks"
CHECKS_SUFFIXES = (".yml", ".yaml")
RESULTS_TABLE = "dq_results"
RESULTS_SCHEMA = (
    "run_id STRING, run_time TIMESTAMP, table_name STRING, checks_file STRING, "
    "check_name STRING, criticality STRING, function STRING, columns ARRAY<STRING>, "
    "filter STRING, failed_rows BIGINT, checked_rows BIGINT, input_rows BIGINT, "
    "quarantine_table STRING"
)
"""One row per check per run: what `dq_results` holds (created with this schema)."""
SKIP_DIRS = frozenset({"tests", "static_data", "__pycache__"})
"""Folders of a flow `problems` does not search (a flow's tests may keep bad files on purpose)."""
MAX_CHECKS = 1000
_IDENTIFIER = r"(?:`[^`]+`|[A-Za-z0-9_]+)"
_SCHEMA_NAME = re.compile(rf"{_IDENTIFIER}\.{_IDENTIFIER}")
_LOCAL_HOST = "https://no-workspace.meshops.invalid"
"""Host of the local client: `.invalid` never resolves, and the transport never connects."""


class NoWorkspace(MeshopsError):
    """A local run asked for a Databricks API that only a workspace has."""


# ------------------------------------------------------------------ the checks file


class CheckBlock(StrictModel):
    """`check:` of one check: the DQX function and its arguments."""

    function: Annotated[str, Field(min_length=1)]
    arguments: dict[str, Any] = Field(default_factory=dict)
    for_each_column: Annotated[list[str | list[str]], Field(min_length=1)] | None = None


class CheckEntry(StrictModel):
    """One check of a checks file, with exactly the keys DQX reads."""

    check: CheckBlock
    criticality: Literal["error", "warn"] = "error"
    name: Annotated[str, Field(min_length=1)] | None = None
    filter: Annotated[str, Field(min_length=1)] | None = None
    user_metadata: dict[str, str] | None = None
    message_expr: Annotated[str, Field(min_length=1)] | None = None


class _Listed(StrictModel):
    """The file's list, under a key only so pydantic reports each check's index and keys."""

    checks: list[CheckEntry]


@dataclass(frozen=True)
class ChecksFile:
    """A validated checks file: where it is and its checks as DQX takes them (dicts)."""

    path: Path
    shown: str
    checks: tuple[dict[str, Any], ...]

    @property
    def stem(self) -> str:
        """`trips` for `trips.checks.yml` and `checks/trips.yml`; the folder for `checks.yml`."""
        name = self.path.name
        for suffix in CHECKS_SUFFIXES:
            name = name.removesuffix(suffix)
        name = name.removesuffix(".checks")
        return self.path.parent.name if name == CHECKS_FOLDER else name


def is_checks_file(path: Path) -> bool:
    """Whether the name says checks file: `checks.yml`, `*.checks.yml`, `checks/*.yml`."""
    if path.suffix not in CHECKS_SUFFIXES:
        return False
    stem = path.name[: -len(path.suffix)]
    return stem == CHECKS_FOLDER or stem.endswith(".checks") or path.parent.name == CHECKS_FOLDER


def checks_files(flow_folder: Path) -> list[Path]:
    """Every checks file of a flow, sorted; hidden folders and SKIP_DIRS are not searched."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(flow_folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        here = Path(folder)
        found.extend(here / f for f in sorted(files) if is_checks_file(here / f))
    return found


def problems(flow_folder: Path, repo_root: Path) -> list[Problem]:
    """Every problem of every checks file of a flow (no Spark, no workspace): for `validate`.

    DQX (and through it mlflow) is imported only when the flow has a checks file."""
    out: list[Problem] = []
    for path in checks_files(flow_folder):
        out.extend(file_problems(path, repo_root))
    return out


def file_problems(path: Path, repo_root: Path | None) -> list[Problem]:
    """Every problem of one checks file, each naming the file, line, check index and key."""
    try:
        load_checks(path, repo_root)
    except InvalidFiles as exc:
        return exc.problems
    return []


def load_checks(path: Path, repo_root: Path | None) -> ChecksFile:
    """Read and validate a checks file; InvalidFiles lists every problem in it."""
    shown = display_path(path, repo_root)
    if not is_checks_file(path):
        raise InvalidFiles(
            [
                Problem(
                    shown,
                    "",
                    "not a checks file name; expected checks.yml, <name>.checks.yml or a .yml "
                    f"in a {CHECKS_FOLDER}/ folder (so `meshops validate` checks it before a run)",
                )
            ]
        )
    doc = yamldoc.load(path, repo_root)
    if not isinstance(doc.data, list) or not doc.data:
        got = "nothing" if doc.data is None or doc.data == [] else type(doc.data).__name__
        raise InvalidFiles(
            [doc.problem((), f"got {got}; expected a list of checks (DQX's checks file format)")]
        )
    if len(doc.data) > MAX_CHECKS:
        raise InvalidFiles(
            [doc.problem((), f"got {len(doc.data):,} checks; expected at most {MAX_CHECKS:,}")]
        )
    listed = yamldoc.YamlDoc(
        path=doc.path,
        shown=doc.shown,
        data={"checks": doc.data},
        lines={("checks", *key): line for key, line in doc.lines.items()},
    )
    shape: list[Problem] = []
    try:
        yamldoc.validate(_Listed, listed)
    except InvalidFiles as exc:
        cause = exc.__cause__
        found = exc.problems
        if isinstance(cause, ValidationError):  # every problem, not the capped list
            found = yamldoc.problems(_Listed, listed, cause)
        shape = [replace(p, key=p.key.removeprefix("checks")) for p in found]
    broken = {_index(p.key) for p in shape}
    checks = [c for i, c in enumerate(doc.data) if i not in broken]
    indexes = [i for i in range(len(doc.data)) if i not in broken]
    found_all = shape + _dqx_problems(doc, checks, indexes)
    if found_all:
        found_all.sort(key=lambda p: (p.line or 0, p.key))
        raise InvalidFiles(yamldoc.capped(found_all))
    return ChecksFile(path=path, shown=doc.shown, checks=tuple(doc.data))


def _index(key: str) -> int | None:
    match = re.match(r"\[(\d+)\]", key)
    return int(match.group(1)) if match else None


_DQX_MESSAGES: list[tuple[re.Pattern[str], tuple[str | int, ...]]] = [
    (re.compile(r"^Unexpected argument '(?P<arg>\w+)'"), ("check", "arguments")),
    (re.compile(r"^Argument '(?P<arg>\w+)' should be of type"), ("check", "arguments")),
    (re.compile(r"^Missing required argument '[^']*'"), ("check", "arguments")),
    (re.compile(r"^Item \d+ in argument"), ("check", "arguments")),
    (re.compile(r"^No arguments provided"), ("check", "arguments")),
    (re.compile(r"^Invalid 'criticality'"), ("criticality",)),
]


def _dqx_problems(
    doc: yamldoc.YamlDoc, checks: list[dict[str, Any]], indexes: list[int]
) -> list[Problem]:
    """DQX's own validation of each well-formed check (function and arguments), then
    identical checks (DQX's duplicate detection), as Problems at the check's key."""
    from databricks.labs.dqx.checks_semantic_validator import ChecksSemanticValidator
    from databricks.labs.dqx.engine import DQEngine
    from databricks.labs.dqx.rule import CHECK_FUNC_REGISTRY

    out: list[Problem] = []
    valid: list[tuple[int, dict[str, Any]]] = []
    for index, check in zip(indexes, checks, strict=True):
        status = DQEngine.validate_checks([check], semantic_validation_mode=None)
        for message in status.errors:
            out.append(_dqx_problem(doc, index, check, message, CHECK_FUNC_REGISTRY))
        if not status.errors:
            valid.append((index, check))
    for issue in ChecksSemanticValidator.detect_duplicates([c for _, c in valid]):
        pair = [int(n) for n in re.findall(r"index (\d+)", issue)]
        if len(pair) == 2:
            later, earlier = valid[pair[0]][0], valid[pair[1]][0]
            out.append(
                doc.problem(
                    (later,),
                    f"the same check as [{earlier}] (function, arguments, criticality and "
                    "filter); expected each check once",
                )
            )
    return out


def _dqx_problem(
    doc: yamldoc.YamlDoc,
    index: int,
    check: dict[str, Any],
    message: str,
    registry: Mapping[str, str],
) -> Problem:
    function = str(check.get("check", {}).get("function", ""))
    if message.startswith(f"function '{function}' is not defined"):
        close = difflib.get_close_matches(function, list(registry), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return doc.problem(
            (index, "check", "function"),
            f"unknown check function {excerpt(function, 40)!r}; expected one of DQX's check "
            f"functions{hint}",
        )
    key: tuple[str | int, ...] = (index, "check")
    for pattern, where in _DQX_MESSAGES:
        match = pattern.match(message)
        if match:
            arg = match.groupdict().get("arg")
            key = (index, *where, arg) if arg else (index, *where)
            break
    text = message.replace(f": {check}", "").replace(str(check), "the check")
    return doc.problem(key, excerpt(text, 300))


# ------------------------------------------------------------------ DQX's workspace client


class LocalCompute(BaseAdapter):
    """The local client's transport: answers the two discovery calls DQX makes from the local
    Spark session; every other call raises NoWorkspace (nothing is sent anywhere)."""

    def __init__(self, spark_version: str) -> None:
        super().__init__()
        self.spark_version = spark_version
        self.calls: list[str] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        path = (request.path_url or "").split("?", 1)[0]
        self.calls.append(f"{request.method} {path}")
        body: dict[str, Any]
        if request.method == "GET" and path == "/.well-known/databricks-config":
            body = {}  # the SDK's host discovery: nothing to add to the explicit config
        elif request.method == "GET" and path.endswith("/clusters/spark-versions"):
            # the compute's Spark version; under both Scala suffixes, since DQX asks with the
            # SDK's default (2.12) and only checks that the call answers
            major_minor = ".".join(self.spark_version.split(".")[:2])
            name = f"local Spark {self.spark_version}"
            keys = [f"{major_minor}.x-scala{scala}" for scala in ("2.13", "2.12")]
            body = {"versions": [{"key": key, "name": name} for key in keys]}
        else:
            raise NoWorkspace(
                f"{request.method} {path}: a local run has no Databricks workspace; "
                "meshops.quality gives DQX a client for applying checks only"
            )
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        return None


def local_workspace_client(spark_version: str) -> WorkspaceClient:
    """A WorkspaceClient for DQX on a machine without a workspace (see the module docstring).

    Built from explicit settings only: no environment variable or `~/.databrickscfg` profile
    changes it (`profile=""`), and its transport is `LocalCompute`.
    """
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config
    from databricks.sdk.credentials_provider import CredentialsStrategy

    class NoCredentials(CredentialsStrategy):
        """No token exists locally, and the transport never sends a request anywhere."""

        def auth_type(self) -> str:
            return "meshops-local"

        def __call__(self, cfg: Config) -> Any:
            return dict

    config = Config(
        host=_LOCAL_HOST,
        profile="",
        credentials_strategy=NoCredentials(),
        http_adapter=LocalCompute(spark_version),
    )
    return WorkspaceClient(config=config)


def in_workspace() -> bool:
    """Whether this process runs on Databricks compute (the runtime sets this variable)."""
    return bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))


def workspace_client(spark: SparkSession) -> WorkspaceClient:
    """The notebook's WorkspaceClient in a workspace; the local client anywhere else."""
    if in_workspace():
        from databricks.sdk import WorkspaceClient

        return WorkspaceClient()
    return local_workspace_client(spark.version)


# ------------------------------------------------------------------ applying checks


@dataclass(frozen=True)
class CheckResult:
    """One check of one run: what `dq_results` records."""

    name: str
    criticality: str
    function: str
    columns: tuple[str, ...]
    filter: str | None
    failed_rows: int
    checked_rows: int


@dataclass(frozen=True)
class QualityRun:
    """What one application of a checks file gave."""

    run_id: str
    """DQX's run id: also in every `_errors`/`_warnings` entry of the run."""
    run_time: datetime
    table: str
    checks_file: str
    input_rows: int
    error_rows: int
    """Rows with at least one error: not in `valid`."""
    warning_rows: int
    clean_rows: int
    """Rows with neither an error nor a warning: not in `quarantined`."""
    checks: tuple[CheckResult, ...]
    valid: DataFrame
    quarantined: DataFrame
    results_table: str
    quarantine_table: str | None

    @property
    def valid_rows(self) -> int:
        """Rows without an error (rows with only warnings are valid too)."""
        return self.input_rows - self.error_rows

    @property
    def quarantined_rows(self) -> int:
        """Rows with an error or a warning (DQX's invalid rows)."""
        return self.input_rows - self.clean_rows


def apply_checks(
    df: DataFrame,
    checks: str | os.PathLike[str],
    *,
    table: str | None = None,
    quarantine_table: str | None = None,
    schema: str | None = None,
    dbutils: Any = None,
) -> tuple[DataFrame, DataFrame]:
    """Apply a checks file to `df` with DQX; returns `(valid, quarantined)` and records the run.

    - `checks`: the checks file; a relative path is relative to the calling notebook's folder.
    - `table`: the dataset the checks guard, as `dq_results.table_name` (default: the file's
      name, `trips` for `checks/trips.yml`).
    - `quarantine_table`: append the quarantined rows (with `_errors`/`_warnings`) to this
      table: a name in the flow's schema, or `catalog.schema.table`.
    - `schema`: `catalog.schema` for `dq_results` (and a short quarantine name); default the
      flow's schema, as the notebook's brickops `dbname(db=<flow>)` names it.
    - `dbutils`: the notebook's; default found as brickops finds it (the notebook's globals).
    """
    context = _notebook_context(dbutils, needed=schema is None)
    path = Path(checks)
    if not path.is_absolute():
        path = notebook_folder(context) / path
    root = _repo_root(path.parent)
    loaded = load_checks(path, root)
    target = _schema(schema) if schema is not None else flow_schema(context)
    run = run_checks(
        df, loaded, table=table or loaded.stem, schema=target, quarantine_table=quarantine_table
    )
    print(summary(run))
    return run.valid, run.quarantined


def run_checks(
    df: DataFrame,
    checks: ChecksFile,
    *,
    table: str,
    schema: str,
    quarantine_table: str | None = None,
) -> QualityRun:
    """Apply validated checks with DQX, record one row per check in `<schema>.dq_results` and
    append the quarantined rows to `quarantine_table` if given. Everything explicit: what
    `apply_checks` calls once it has found the file and the schema.

    DQX's `apply_checks_by_metadata_and_split` is `apply_checks_by_metadata` then `get_valid`
    and `get_invalid`; the same three calls here keep the checked rows, which DQX's
    `compute_summary_metrics` counts per check."""
    from databricks.labs.dqx.checks_serializer import deserialize_checks
    from databricks.labs.dqx.config import OutputConfig
    from databricks.labs.dqx.engine import persist_if_supported

    spark = df.sparkSession
    schema = _schema(schema)
    quarantine = _table(quarantine_table, schema) if quarantine_table else None
    run_id, run_time = str(uuid.uuid4()), datetime.now(UTC)
    dq = make_engine(spark, run_id, run_time)
    listed = [dict(c) for c in checks.checks]
    applied = dq.apply_checks_by_metadata(df, listed)
    checked = applied[0] if isinstance(applied, tuple) else applied
    persist_if_supported(checked, spark)  # counted, written and returned: evaluated once
    metrics = {
        row["metric_name"]: row["metric_value"]
        for row in dq.compute_summary_metrics(
            checked,
            listed,
            checks_location=checks.shown,
            quarantine_config=OutputConfig(location=quarantine) if quarantine else None,
        ).collect()
    }
    rules = {rule.rule_fingerprint: rule for rule in deserialize_checks(listed)}
    run = QualityRun(
        run_id=run_id,
        run_time=run_time,
        table=table,
        checks_file=checks.shown,
        input_rows=int(metrics["input_row_count"]),
        error_rows=int(metrics["error_row_count"]),
        warning_rows=int(metrics["warning_row_count"]),
        clean_rows=int(metrics["valid_row_count"]),
        checks=tuple(_results(json.loads(metrics.get("check_metrics") or "[]"), rules)),
        valid=dq.get_valid(checked),
        quarantined=dq.get_invalid(checked),
        results_table=f"{schema}.{RESULTS_TABLE}",
        quarantine_table=quarantine,
    )
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    if quarantine:
        writer = run.quarantined.write.format("delta").mode("append")
        writer.option("mergeSchema", "true").saveAsTable(quarantine)
    record(spark, run)
    return run


def make_engine(spark: SparkSession, run_id: str, run_time: datetime) -> DQEngine:
    """DQX's engine with a metrics observer (per-check counts), one run id and one run time
    for the result columns and the recorded rows."""
    from databricks.labs.dqx.config import ExtraParams
    from databricks.labs.dqx.engine import DQEngine
    from databricks.labs.dqx.metrics_observer import DQMetricsObserver

    return DQEngine(
        workspace_client(spark),
        spark,
        extra_params=ExtraParams(run_id_overwrite=run_id, run_time_overwrite=run_time.isoformat()),
        observer=DQMetricsObserver(name="meshops"),
    )


def _results(
    entries: Sequence[Mapping[str, Any]], rules: Mapping[str, DQRule]
) -> Iterator[CheckResult]:
    """DQX's per-check counts (`check_metrics`) joined to the rules by their fingerprint."""
    for entry in entries:
        rule = rules.get(str(entry.get("rule_fingerprint", "")))
        if rule is None:  # both come from the same checks: DQX changed how it counts
            raise MeshopsError(
                f"DQX counted check {entry.get('check_name')!r}, which is not one of the applied "
                "checks; expected its per-check metrics to match (a databricks-labs-dqx change?)"
            )
        counted = entry["error_count"] if rule.criticality == "error" else entry["warning_count"]
        yield CheckResult(
            name=str(entry["check_name"]),
            criticality=rule.criticality,
            function=rule.check_func.__name__,
            columns=_columns(rule),
            filter=rule.filter,
            failed_rows=int(counted),
            checked_rows=int(entry["checked_count"]),
        )


def _columns(rule: DQRule) -> tuple[str, ...]:
    given: list[Any] = list(rule.columns or []) or (
        [rule.column] if rule.column is not None else []
    )
    return tuple(c if isinstance(c, str) else str(c) for c in given)


def record(spark: SparkSession, run: QualityRun) -> None:
    """Append one row per check of `run` to its results table (created on first use)."""
    spark.sql(f"CREATE TABLE IF NOT EXISTS {run.results_table} ({RESULTS_SCHEMA}) USING DELTA")
    rows = [
        (
            run.run_id,
            run.run_time,
            run.table,
            run.checks_file,
            check.name,
            check.criticality,
            check.function,
            list(check.columns),
            check.filter,
            check.failed_rows,
            check.checked_rows,
            run.input_rows,
            run.quarantine_table,
        )
        for check in run.checks
    ]
    if rows:
        spark.createDataFrame(rows, RESULTS_SCHEMA).write.format("delta").mode(
            "append"
        ).saveAsTable(run.results_table)


def summary(run: QualityRun) -> str:
    """A few lines for the task's log: rows kept and quarantined, failures per check."""
    lines = [
        f"[meshops] data quality of {run.table} ({run.checks_file}): {run.input_rows:,} rows, "
        f"{run.valid_rows:,} valid, {run.quarantined_rows:,} quarantined"
        + (f" -> {run.quarantine_table}" if run.quarantine_table else "")
        + f"; results in {run.results_table} (run {run.run_id})"
    ]
    width = max((len(c.name) for c in run.checks), default=0)
    for check in run.checks:
        lines.append(
            f"  {check.name:<{width}}  {check.criticality:<5}  {check.failed_rows:,} of "
            f"{check.checked_rows:,} failed"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------ where the notebook is


def _notebook_context(dbutils: Any, *, needed: bool) -> Any:
    """brickops' DbContext of the calling notebook (path, user, widgets), or None when there is
    no notebook and nothing needs one."""
    from brickops.databricks.context import get_context

    try:
        return get_context(dbutils)
    except RuntimeError as exc:  # brickops: "dbutils not found in the stack."
        if needed:
            raise MeshopsError(
                "no notebook context (no dbutils): call apply_checks from a task's notebook, "
                "or pass schema='catalog.schema' for dq_results"
            ) from exc
        return None


def notebook_folder(context: Any) -> Path:
    """The calling notebook's folder: locally the notebook path is repo-relative (the local
    runner's dbutils); in a workspace the working directory is the notebook's folder."""
    here = Path.cwd()
    key = str(getattr(context, "notebook_path", "") or "").strip("/")
    root = _repo_root(here)
    if key and root is not None:
        folder = (root / key).parent
        if folder.is_dir():
            return folder
    return here


def flow_schema(context: Any) -> str:
    """`catalog.schema` of the notebook's flow: brickops' catalog and `dbname(db=<flow>)` from
    the notebook's path and widgets, as the notebook's own brickops calls name its tables."""
    from brickops.datamesh.naming import catname_from_path, dbname
    from brickops.datamesh.parsepath.parse import parsepath

    path = str(getattr(context, "notebook_path", "") or "")
    parsed = parsepath(path)
    if parsed is None or not parsed.flow:
        raise MeshopsError(
            f"notebook {path!r} is not in a flow folder (orgs/<org>/domains/<domain>/projects/"
            "<project>/flows/<prep|ml>/<flow>/): pass schema='catalog.schema' for dq_results"
        )
    catalog = catname_from_path(db_context=context)
    return str(dbname(db=parsed.flow, cat=catalog, db_context=context))


def _repo_root(start: Path) -> Path | None:
    try:
        return find_repo_root(start)
    except InvalidInput:
        return None


def _schema(name: str) -> str:
    if not _SCHEMA_NAME.fullmatch(name):
        raise InvalidInput(f"schema {name!r}: expected catalog.schema")
    return name


def _table(name: str, schema: str) -> str:
    if re.fullmatch(_IDENTIFIER, name):
        return f"{schema}.{name}"
    if re.fullmatch(rf"{_IDENTIFIER}\.{_IDENTIFIER}\.{_IDENTIFIER}", name):
        return name
    raise InvalidInput(f"quarantine_table {name!r}: expected a table name or catalog.schema.table")
