"""Run Databricks notebooks (.py source, exported .ipynb, plain .py files) locally, unchanged.

Python cells are compiled with their real line numbers (for a .ipynb: the cell and
its line), so a traceback points at the place a user can open. Magics run as the
workspace would run them, except `%pip`, which checks the environment instead of
installing, so a local run never drifts from the project's declared dependencies.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shlex
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from meshops.engine import session
from meshops.errors import MeshopsError
from meshops.source import (
    Cell,
    NotebookFormatError,
    cell_filename,
    parse,
    rewrite_line_magics,
    where,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LINE_MAGIC_CALL = "__meshops_line_magic__"
NOTEBOOK_SUFFIXES = (".py", ".ipynb")


class NotebookError(MeshopsError):
    """A notebook failed: where (file and line) and why, in one line; the traceback kept apart."""

    def __init__(
        self, path: Path, line: int | None, message: str, details: str = "", cell: int = 0
    ) -> None:
        self.path, self.line, self.details, self.reason = path, line, details, message
        self.cell = cell
        super().__init__(f"{where(path, line, cell)}: {message}")

    def location(self, shown: str) -> str:
        """`shown:line` (or `shown (cell N, line L)`) for a display form of the path."""
        return where(shown, self.line, self.cell)


class NotebookExit(Exception):
    """`dbutils.notebook.exit(value)`: stop the notebook successfully with a result."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class TaskInterrupted(BaseException):
    """Raised inside a task thread when its timeout passes."""


@dataclass
class NotebookRunner:
    """Runs notebooks in a namespace (the notebook's globals), as one Databricks task would."""

    namespace: dict[str, Any]
    run_sql: Callable[[str], Any]
    show: Callable[[Any], None]

    def run(self, path: Path) -> str | None:
        """Execute every cell; returns the `dbutils.notebook.exit` value, if any."""
        try:
            cells = parse(path)
        except (NotebookFormatError, UnicodeDecodeError) as exc:
            raise NotebookError(path, None, str(exc).removeprefix(f"{path}: ")) from exc
        try:
            for cell in cells:
                self._cell(path, cell)
        except NotebookExit as done:
            return done.value
        return None

    def _cell(self, path: Path, cell: Cell) -> None:
        if cell.kind in ("md", "noop"):
            return
        if cell.kind == "unsupported":
            raise NotebookError(
                path,
                cell.line,
                f"{cell.magic or 'non-Python'} cells do not run locally; "
                "use Python, %sql, %sh or %fs",
                cell=cell.index,
            )
        if cell.kind == "pip":
            check_pip(path, cell.line, cell.source, cell.index)
        elif cell.kind == "run":
            self._run_other(path, cell)
        elif cell.kind == "sql":
            self._sql(path, cell)
        elif cell.kind == "sh":
            run_shell(path, cell.line, cell.source, cell.index)
        elif cell.kind == "fs":
            self.show(
                run_fs(self.namespace.get("dbutils"), path, cell.line, cell.source, cell.index)
            )
        else:
            self._python(path, cell)

    def _sql(self, path: Path, cell: Cell) -> None:
        result = None
        for statement in split_sql(cell.source):
            try:
                result = self.run_sql(statement)
            except Exception as exc:
                raise NotebookError(
                    path, cell.line, _first_line(exc), traceback.format_exc(), cell.index
                ) from exc
        if cell.source.strip():
            self.show(result)

    def _python(self, path: Path, cell: Cell) -> None:
        # pad with newlines so compiled line numbers are the file's (or the cell's) line numbers
        filename = cell_filename(path, cell.index)
        source = "\n" * (cell.line - 1) + cell.source
        try:
            tree = ast.parse(source, filename=filename, mode="exec")
        except SyntaxError as exc:
            try:  # a `%pip install x` or `!cmd` line in a Python cell, as IPython allows
                tree = ast.parse(rewrite_line_magics(source, LINE_MAGIC_CALL), filename=filename)
            except SyntaxError:
                raise NotebookError(
                    path, exc.lineno, f"SyntaxError: {exc.msg}", cell=cell.index
                ) from exc
            self.namespace[LINE_MAGIC_CALL] = partial(_line_magic, path, cell.index)
        code = compile(tree, filename=filename, mode="exec")
        try:
            exec(code, self.namespace)  # noqa: S102 - running the notebook is the point
        except NotebookExit:
            raise
        except NotebookError:
            raise
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit) and not isinstance(
                exc, TaskInterrupted
            ):
                raise
            index, line = _line_in(path, exc)
            raise NotebookError(
                path, line, _first_line(exc), traceback.format_exc(), index
            ) from exc

    def _run_other(self, path: Path, cell: Cell) -> None:
        target = cell.source.strip().split()[0] if cell.source.strip() else ""
        if not target:
            raise NotebookError(
                path, cell.line, "%run needs a notebook path, e.g. %run ./helpers", cell=cell.index
            )
        found = find_notebook(path.parent / target)
        if found is None:
            raise NotebookError(
                path,
                cell.line,
                f"%run {target}: no notebook at {(path.parent / target).resolve()}(.py|.ipynb)",
                cell=cell.index,
            )
        self.run(found)


def find_notebook(target: Path) -> Path | None:
    """The notebook a workspace path (no extension, as in Databricks) names: .py, then .ipynb."""
    target = target.resolve()
    if target.suffix in NOTEBOOK_SUFFIXES:
        return target if target.is_file() else None
    return next(
        (
            c
            for c in (target, *(target.with_name(target.name + s) for s in NOTEBOOK_SUFFIXES))
            if c.is_file()
        ),
        None,
    )


def _line_magic(path: Path, index: int, magic: str, rest: str, line: int) -> None:
    """A `%pip`/`!cmd` line inside a Python cell (rewritten to a call of this)."""
    if magic == "%pip":
        check_pip(path, line, rest, index)
    else:
        run_shell(path, line, rest, index)


# --- the globals a Databricks notebook gets ----------------------------------------------


class SqlContext:
    """`sqlContext` as Databricks notebooks define it, on the session.

    pyspark's own SQLContext needs a classic SparkContext (none with Spark Connect) and is
    deprecated; old notebooks only call a handful of its methods, and the rest fall
    through to the SparkSession.
    """

    def __init__(self, spark: SparkSession) -> None:
        self.sparkSession = spark

    def sql(self, query: str, *args: Any, **kwargs: Any) -> Any:
        return self.sparkSession.sql(query, *args, **kwargs)

    def table(self, name: str) -> Any:
        return self.sparkSession.table(name)

    @property
    def read(self) -> Any:
        return self.sparkSession.read

    @property
    def readStream(self) -> Any:  # noqa: N802 - Databricks' name
        return self.sparkSession.readStream

    @property
    def udf(self) -> Any:
        return self.sparkSession.udf

    def createDataFrame(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        return self.sparkSession.createDataFrame(*args, **kwargs)

    def range(self, *args: Any, **kwargs: Any) -> Any:
        return self.sparkSession.range(*args, **kwargs)

    def tableNames(self, dbName: str | None = None) -> list[str]:  # noqa: N802,N803
        return [t.name for t in self.sparkSession.catalog.listTables(dbName)]

    def tables(self, dbName: str | None = None) -> Any:  # noqa: N803
        return self.sparkSession.sql(f"SHOW TABLES IN {dbName}" if dbName else "SHOW TABLES")

    def registerDataFrameAsTable(self, df: Any, tableName: str) -> None:  # noqa: N802,N803
        df.createOrReplaceTempView(tableName)

    def dropTempTable(self, tableName: str) -> None:  # noqa: N802,N803
        self.sparkSession.catalog.dropTempView(tableName)

    def cacheTable(self, tableName: str) -> None:  # noqa: N802,N803
        self.sparkSession.catalog.cacheTable(tableName)

    def uncacheTable(self, tableName: str) -> None:  # noqa: N802,N803
        self.sparkSession.catalog.uncacheTable(tableName)

    def clearCache(self) -> None:  # noqa: N802
        self.sparkSession.catalog.clearCache()

    def setConf(self, key: str, value: Any) -> None:  # noqa: N802
        self.sparkSession.conf.set(key, value)

    def getConf(self, key: str, defaultValue: str | None = None) -> str | None:  # noqa: N802,N803
        return self.sparkSession.conf.get(key, defaultValue)

    def newSession(self) -> SqlContext:  # noqa: N802
        return SqlContext(self.sparkSession.newSession())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sparkSession, name)


def databricks_globals(
    spark: SparkSession, dbutils: Any, display: Callable[..., None]
) -> dict[str, Any]:
    """The names a Databricks notebook can use without defining them."""
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "spark": spark,
        "dbutils": dbutils,
        "display": display,
        "displayHTML": display_html,
        "sql": spark.sql,
        "table": spark.table,
        "sqlContext": SqlContext(spark),
        "getArgument": partial(_get_argument, dbutils),
    }
    if session.mode(spark) == "local":  # Spark Connect sessions have no SparkContext
        namespace["sc"] = spark.sparkContext
    return namespace


def _get_argument(dbutils: Any, name: str, default: str | None = None) -> str | None:
    """Databricks' `getArgument(name, default)`: a widget value (job parameter)."""
    value: str | None = dbutils.widgets.getArgument(name, default)
    return value


def display_html(html: Any) -> None:
    """`displayHTML`: no browser in a task log, so the HTML text itself."""
    print(html)


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


# --- %pip ---------------------------------------------------------------------------------

# options of `pip install` that take a value (the value is not a requirement)
_PIP_VALUE_OPTIONS = frozenset(
    [
        "-c",
        "--constraint",
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-t",
        "--target",
        "--prefix",
        "--root",
        "--src",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--progress-bar",
        "--log",
        "--cache-dir",
        "--timeout",
        "--retries",
        "--proxy",
        "--cert",
        "--client-cert",
        "--exists-action",
        "--global-option",
        "--install-option",
        "-C",
        "--config-settings",
        "--upgrade-strategy",
        "--only-binary",
        "--no-binary",
        "--trusted-host",
        "--report",
    ]
)
_warned: set[tuple[str, str, str]] = set()
_warned_lock = threading.Lock()


def check_pip(path: Path, line: int, args: str, cell: int = 0) -> None:
    """`%pip ...` locally: packages must already be in the environment; nothing is installed."""
    text = re.sub(r"\\\n", " ", args)
    text = " ".join(re.sub(r"(^|\s)#.*$", "", ln) for ln in text.splitlines())
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise NotebookError(path, line, f"%pip {text.strip()}: {exc}", cell=cell) from exc
    command, rest = (words[0], words[1:]) if words else ("", [])
    if command != "install":
        _pip_other(command, rest)
        return
    for requirement, origin in _requirements(path, line, rest, cell):
        _check_requirement(path, line, cell, requirement, origin)


def _requirements(path: Path, line: int, words: list[str], cell: int) -> Iterator[tuple[str, str]]:
    """(requirement, where it was written) for each package of a `pip install` command line."""
    args = iter(words)
    for word in args:
        if word in ("-r", "--requirement"):
            yield from _requirements_file(path, line, cell, next(args, ""))
        elif word.startswith(("--requirement=", "-r")):
            name = word.split("=", 1)[1] if word.startswith("--") else word[2:]
            yield from _requirements_file(path, line, cell, name)
        elif word in ("-e", "--editable"):
            yield next(args, ""), "editable"
        elif word in _PIP_VALUE_OPTIONS:
            next(args, None)
        elif not word.startswith("-"):
            yield word, "%pip install"


def _requirements_file(path: Path, line: int, cell: int, name: str) -> Iterator[tuple[str, str]]:
    req_file = (Path.cwd() / name) if not (path.parent / name).is_file() else path.parent / name
    if not req_file.is_file():
        raise NotebookError(
            path,
            line,
            f"%pip install -r {name}: no such file next to the notebook ({path.parent}) "
            "or in the working directory; fix the path",
            cell=cell,
        )
    for raw in req_file.read_text(encoding="utf-8").splitlines():
        stripped = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if stripped:
            nested = shlex.split(stripped)
            if nested[0].startswith("-"):
                yield from _requirements(req_file, line, nested, cell)
            else:
                yield stripped, f"-r {name}"


def _check_requirement(path: Path, line: int, cell: int, text: str, origin: str) -> None:
    shown = f"%pip install {text}" if origin == "%pip install" else f"{text} ({origin})"
    req = _requirement(text)
    if req is None:
        _warn_once(
            ("?", text, ""),
            f"{where(path, line, cell)}: {shown}: meshops cannot check this locally "
            "(not a name[==version]); running with what is installed",
        )
        return
    if req.marker is not None and not req.marker.evaluate():
        return
    fix = (
        f'add "{req}" to the dependencies in {_project_pyproject(path)} '
        "(local runs never install %pip packages)"
    )
    try:
        installed = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        raise NotebookError(
            path,
            line,
            f"{shown}: not installed in this environment; {fix}",
            cell=cell,
        ) from None
    if not req.specifier or req.specifier.contains(installed, prereleases=True):
        return
    if _close_enough(installed, req):
        _warn_once(
            (req.name, str(req.specifier), installed),
            f"{where(path, line, cell)}: warning: {shown}: {req.name} {installed} is installed, "
            f"not {req.specifier}; running with it (same major version). To match the job, {fix}",
        )
        return
    raise NotebookError(
        path,
        line,
        f"{shown}: {req.name} {installed} is installed, which does not satisfy {req.specifier}; "
        f"{fix}",
        cell=cell,
    )


def _requirement(text: str) -> Requirement | None:
    """`text` as a requirement: `pkg=1.2` read as `pkg==1.2`, a wheel file as name==version."""
    text = re.sub(r"^([A-Za-z0-9][A-Za-z0-9._\-]*(?:\[[^\]]*\])?)\s*=(?!=)\s*", r"\1==", text)
    if text.endswith(".whl"):
        try:
            name, version, _, _ = parse_wheel_filename(text.rsplit("/", 1)[-1])
        except InvalidWheelFilename:
            return None
        return Requirement(f"{name}=={version}")
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _close_enough(installed: str, req: Requirement) -> bool:
    """Same major version as one the requirement names (for 0.x: the same minor) runs the code."""
    try:
        have = Version(installed)
    except InvalidVersion:
        return False
    for spec in req.specifier:
        try:
            want = Version(spec.version.removesuffix(".*"))
        except InvalidVersion:
            continue
        if have.major == want.major and (have.major != 0 or have.minor == want.minor):
            return True
    return False


def _warn_once(key: tuple[str, str, str], message: str) -> None:
    """Print to stderr (the task's log) once per process for the same package and versions."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    print(message, file=sys.stderr)


def _project_pyproject(notebook: Path) -> str:
    """The project lib's pyproject.toml a notebook's dependencies belong in, as a path to show."""
    folder = notebook.resolve().parent
    for parent in (folder, *folder.parents):
        libs = sorted(parent.glob("libs/*/pyproject.toml"))
        if libs and not (parent / ".git").exists():
            root = next((p for p in parent.parents if (p / ".git").exists()), None)
            return " or ".join(str(p.relative_to(root) if root else p) for p in libs)
        if (parent / ".git").exists():
            break
    return "your project lib's pyproject.toml"


def _pip_other(command: str, args: list[str]) -> None:
    """`%pip list/freeze/show/...`: answer from the environment; never change it."""
    if command in ("list", "freeze"):
        dists = sorted(
            {(d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()},
            key=lambda d: d[0].lower(),
        )
        sep = "==" if command == "freeze" else " "
        print("\n".join(f"{name}{sep}{version}" for name, version in dists))
    elif command == "show":
        for name in (a for a in args if not a.startswith("-")):
            try:
                print(f"Name: {name}\nVersion: {importlib.metadata.version(name)}")
            except importlib.metadata.PackageNotFoundError:
                print(f"WARNING: Package(s) not found: {name}")
    else:
        print(f"%pip {command}: not run locally (the environment is fixed by pyproject.toml)")


# --- %sh and %fs ---------------------------------------------------------------------------


def run_shell(path: Path, line: int, script: str, cell: int = 0) -> None:
    """`%sh`: bash in the working directory; output into the task's log via Python."""
    cwd = Path.cwd()
    try:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    except FileNotFoundError as exc:
        raise NotebookError(
            path, line, "%sh needs bash, which is not on PATH; install it", cell=cell
        ) from exc
    try:
        while True:  # short waits so a task timeout (raised into this thread) gets through
            try:
                out, err = proc.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.stdout.flush()
    if proc.returncode:
        last = next((ln for ln in reversed(err.splitlines()) if ln.strip()), "")
        raise NotebookError(
            path,
            line,
            f"%sh exited with code {proc.returncode}"
            + (f" ({last.strip()})" if last else "")
            + f"; fix the command (it runs with bash in {cwd})",
            err,
            cell,
        )


_FS_USAGE = "ls, head, cp, mv, rm, mkdirs, put"


def run_fs(dbutils: Any, path: Path, line: int, text: str, cell: int = 0) -> Any:
    """`%fs <command> ...`: the same call on the notebook's `dbutils.fs`; returns its result."""
    try:
        words = shlex.split(text.replace("\n", " "))
    except ValueError as exc:
        raise NotebookError(path, line, f"%fs {text.strip()}: {exc}", cell=cell) from exc
    fs = getattr(dbutils, "fs", None)
    if fs is None:
        raise NotebookError(path, line, "%fs needs `dbutils` in the notebook's globals", cell=cell)
    command = words[0] if words else "ls"
    flags = {w for w in words[1:] if w.startswith("-")}
    args = [w for w in words[1:] if not w.startswith("-")]
    recurse = bool(flags & {"-r", "--recurse", "-R"})
    calls: dict[str, tuple[int, Callable[[], Any]]] = {
        "ls": (0, lambda: fs.ls(args[0] if args else "/")),
        "head": (1, lambda: fs.head(args[0], *(int(a) for a in args[1:2]))),
        "cp": (2, lambda: fs.cp(args[0], args[1], recurse=recurse)),
        "mv": (2, lambda: fs.mv(args[0], args[1], recurse=recurse)),
        "rm": (1, lambda: fs.rm(args[0], recurse=recurse)),
        "mkdirs": (1, lambda: fs.mkdirs(args[0])),
        "put": (2, lambda: fs.put(args[0], args[1], overwrite=bool(flags & {"-f", "--overwrite"}))),
    }
    if command not in calls:
        raise NotebookError(
            path,
            line,
            f"%fs {command}: not a dbutils.fs command; use one of {_FS_USAGE}",
            cell=cell,
        )
    needed, call = calls[command]
    if len(args) < needed:
        raise NotebookError(
            path,
            line,
            f"%fs {command} needs {needed} path argument(s); got {text.strip()!r}",
            cell=cell,
        )
    try:
        return call()
    except Exception as exc:
        raise NotebookError(
            path, line, f"%fs {command}: {_first_line(exc)}", traceback.format_exc(), cell
        ) from exc


# --- helpers -------------------------------------------------------------------------------


def split_sql(text: str) -> list[str]:
    """Statements of a %sql cell: split on `;` outside quotes and comments."""
    out, buf, quote = [], [], ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
            buf.append(ch)
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif ch == ";":
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    out.append("".join(buf))
    return [s.strip() for s in out if s.strip()]


def _line_in(path: Path, exc: BaseException) -> tuple[int, int | None]:
    """(cell, line) of the innermost traceback frame in the notebook file (cell 0 for .py)."""
    found: tuple[int, int | None] = (0, None)
    prefix = f"{path} (cell "
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            found = (0, frame.lineno)
        elif frame.filename.startswith(prefix) and frame.filename.endswith(")"):
            number = frame.filename[len(prefix) : -1]
            if number.isdigit():
                found = (int(number), frame.lineno)
    return found


def _first_line(exc: BaseException) -> str:
    """The reason a cell failed, in one line; for a Java error its Java cause."""
    if _is_java_error(exc):
        from meshops.engine.unity import java_cause  # pyspark's world: imported when needed

        return java_cause(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _is_java_error(exc: BaseException) -> bool:
    """A py4j `Py4JJavaError` (checked without importing py4j, which needs pyspark)."""
    return any(
        kind.__name__ == "Py4JJavaError" and kind.__module__.startswith("py4j")
        for kind in type(exc).__mro__
    )
