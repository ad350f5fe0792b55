"""Run Databricks-source notebooks (and plain .py files) locally, unchanged.

Python cells are compiled with their real line numbers, so a traceback points at
the notebook file and line a user can open.
"""

from __future__ import annotations

import ast
import importlib.metadata
import shlex
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from meshops.errors import MeshopsError
from meshops.source import Cell, parse


class NotebookError(MeshopsError):
    """A notebook failed: where (file and line) and why, in one line; the traceback kept apart."""

    def __init__(self, path: Path, line: int | None, message: str, details: str = "") -> None:
        self.path, self.line, self.details, self.reason = path, line, details, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


class NotebookExit(Exception):
    """`dbutils.notebook.exit(value)`: stop the notebook successfully with a result."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


@dataclass
class NotebookRunner:
    """Runs notebooks in a namespace (the notebook's globals), as one Databricks task would."""

    namespace: dict[str, Any]
    run_sql: Callable[[str], Any]
    show: Callable[[Any], None]

    def run(self, path: Path) -> str | None:
        """Execute every cell; returns the `dbutils.notebook.exit` value, if any."""
        try:
            for cell in parse(path):
                self._cell(path, cell)
        except NotebookExit as done:
            return done.value
        return None

    def _cell(self, path: Path, cell: Cell) -> None:
        if cell.kind == "md":
            return
        if cell.kind == "unsupported":
            raise NotebookError(
                path, cell.line, f"{cell.magic} cells do not run locally; use Python or %sql"
            )
        if cell.kind == "pip":
            check_pip(path, cell)
        elif cell.kind == "run":
            self._run_other(path, cell)
        elif cell.kind == "sql":
            for statement in split_sql(cell.source):
                try:
                    result = self.run_sql(statement)
                except Exception as exc:
                    raise NotebookError(
                        path, cell.line, _first_line(exc), traceback.format_exc()
                    ) from exc
            if cell.source.strip():
                self.show(result)
        else:
            self._python(path, cell)

    def _python(self, path: Path, cell: Cell) -> None:
        # pad with newlines so compiled line numbers are the file's line numbers
        source = "\n" * (cell.line - 1) + cell.source
        try:
            tree = ast.parse(source, filename=str(path), mode="exec")
            code = compile(tree, filename=str(path), mode="exec")
        except SyntaxError as exc:
            raise NotebookError(path, exc.lineno, f"SyntaxError: {exc.msg}") from exc
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
            line = _line_in(path, exc)
            raise NotebookError(path, line, _first_line(exc), traceback.format_exc()) from exc

    def _run_other(self, path: Path, cell: Cell) -> None:
        target = cell.source.strip().split()[0] if cell.source.strip() else ""
        if not target:
            raise NotebookError(path, cell.line, "%run needs a notebook path, e.g. %run ./helpers")
        other = (path.parent / target).resolve()
        candidates = [other, other.with_suffix(".py")] if other.suffix != ".py" else [other]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise NotebookError(path, cell.line, f"%run {target}: no notebook at {other}")
        self.run(found)


class TaskInterrupted(BaseException):
    """Raised inside a task thread when its timeout passes."""


def check_pip(path: Path, cell: Cell) -> None:
    """`%pip install` locally: the packages must already be in the environment, not installed."""
    words = shlex.split(cell.source.replace("\n", " "))
    if not words or words[0] != "install":
        raise NotebookError(path, cell.line, "only `%pip install ...` is supported locally")
    wanted: list[str] = []
    args = iter(words[1:])
    for word in args:
        if word in ("-r", "--requirement"):
            req_file = (path.parent / next(args, "")).resolve()
            if not req_file.is_file():
                raise NotebookError(path, cell.line, f"%pip -r {req_file}: no such file")
            wanted += [
                ln.strip()
                for ln in req_file.read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.startswith("#")
            ]
        elif not word.startswith("-"):
            wanted.append(word)
    for text in wanted:
        problem = _missing(text)
        if problem:
            raise NotebookError(
                path,
                cell.line,
                f"%pip install {text}: {problem}; add it to your project lib's dependencies "
                "(pyproject.toml) so local runs and jobs get the same version",
            )


def _missing(text: str) -> str | None:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return "not a requirement meshops can check locally (use name[==version])"
    try:
        installed = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed in this environment"
    if req.specifier and not req.specifier.contains(installed, prereleases=True):
        return f"{installed} is installed, which does not satisfy {req.specifier}"
    return None


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


def _line_in(path: Path, exc: BaseException) -> int | None:
    """Line of the innermost frame of the traceback that is in the notebook file."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return line


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
