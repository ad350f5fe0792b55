"""Databricks notebooks: cells, and the packages a notebook imports.

Two formats come out of a workspace. A source file (`.py`) starts with
`# Databricks notebook source`; cells are separated by `# COMMAND ----------`;
magic cells have every line prefixed with `# MAGIC`. Anything else ending in .py
is a plain Python file: one cell. An exported Jupyter file (`.ipynb`) is JSON; a
code cell whose first line is `%sql`, `%md`, ... is that kind of cell, and code
cells without a magic are in the notebook's language. In a .ipynb, a cell's
`line` counts within the cell and `index` says which cell, since lines of the
JSON file mean nothing to a reader.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"
DATABRICKS_NOTEBOOK = "application/vnd.databricks.v1+notebook"
CellKind = Literal["python", "sql", "md", "pip", "run", "sh", "fs", "noop", "unsupported"]
KINDS: dict[str, CellKind] = {
    "%md": "md",
    "%md-sandbox": "md",
    "%sql": "sql",
    "%pip": "pip",
    "%run": "run",
    "%python": "python",
    "%sh": "sh",
    "%fs": "fs",
    "%restart_python": "noop",
}
# `%pip install x` / `!pip install x` / `!ls` as a line of a Python cell (IPython line magics)
LINE_MAGIC = re.compile(
    r"^(?P<indent>[ \t]*)(?P<magic>%pip(?=\s|$)|!\s*pip3?(?=\s|$)|!(?=\S))(?P<rest>.*)$"
)


class NotebookFormatError(ValueError):
    """A .ipynb file that is not notebook JSON."""


@dataclass(frozen=True)
class Cell:
    kind: CellKind
    source: str
    line: int  # 1-based line of the cell's first source line: in the file, or in the cell (.ipynb)
    magic: str = ""
    index: int = 0  # 1-based cell number in a .ipynb; 0 for .py files


def where(path: Path | str, line: int | None, cell: int = 0) -> str:
    """How an error names its place: `nb.py:12`, or `nb.ipynb (cell 3, line 2)`."""
    if cell:
        return f"{path} (cell {cell}, line {line})" if line else f"{path} (cell {cell})"
    return f"{path}:{line}" if line else str(path)


def cell_filename(path: Path, cell: int) -> str:
    """The file name a .ipynb cell is compiled under, so tracebacks say which cell."""
    return f"{path} (cell {cell})" if cell else str(path)


def parse(path: Path, text: str | None = None) -> list[Cell]:
    """Cells of a notebook (read from `path` unless its `text` is given); a plain .py file
    is one Python cell."""
    text = path.read_text(encoding="utf-8") if text is None else text
    if path.suffix == ".ipynb":
        return _parse_ipynb(path, text)
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        return [Cell("python", text, 1)]
    cells: list[Cell] = []
    start, chunk = 2, list[str]()
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == SEPARATOR:
            cells.append(_cell(chunk, start))
            start, chunk = number + 1, []
        else:
            chunk.append(line)
    cells.append(_cell(chunk, start))
    return [c for c in cells if c.source.strip()]


def _cell(lines: list[str], start: int) -> Cell:
    body = [ln for ln in lines if ln.strip()]
    if body and all(ln.startswith(MAGIC) for ln in body):
        stripped = [re.sub(r"^# MAGIC ?", "", ln) if ln.startswith(MAGIC) else ln for ln in lines]
        return _magic_cell(stripped, start, "python", 0)
    return Cell("python", "\n".join(lines), start)


def _magic_cell(lines: list[str], start: int, language: CellKind, index: int) -> Cell:
    """A cell whose first non-blank line may be a `%magic`; else a cell of `language`."""
    first = next((i for i, ln in enumerate(lines) if ln.strip()), 0)
    head = lines[first].strip() if lines else ""
    magic = head.split()[0] if head.startswith("%") else ""
    if not magic:
        return Cell(language, "\n".join(lines), start, "", index)
    rest = "\n".join([head[len(magic) :].strip(), *lines[first + 1 :]])
    if magic in KINDS:
        return Cell(KINDS[magic], rest, start + first, magic, index)
    return Cell("unsupported", "\n".join(lines), start + first, magic, index)


def _parse_ipynb(path: Path, text: str) -> list[Cell]:
    try:
        doc = json.loads(text)
        raw_cells = doc["cells"]
    except (ValueError, KeyError, TypeError) as exc:
        raise NotebookFormatError(
            f"{path}: not a Jupyter notebook ({exc}); export it again from the workspace "
            "as IPython Notebook or as Source File"
        ) from exc
    language = _language(doc.get("metadata") or {})
    cells: list[Cell] = []
    for index, raw in enumerate(raw_cells, start=1):
        source = raw.get("source", "")
        body = "".join(source) if isinstance(source, list) else str(source)
        if not body.strip() or raw.get("cell_type") == "raw":
            continue
        if raw.get("cell_type") == "markdown":
            cells.append(Cell("md", body, 1, "%md", index))
        else:
            cells.append(_magic_cell(body.splitlines(), 1, language, index))
    return cells


def _language(metadata: dict[str, Any]) -> CellKind:
    """The kind of a code cell without a magic: the notebook's default language."""
    databricks = metadata.get(DATABRICKS_NOTEBOOK) or {}
    name = (
        databricks.get("language")
        or (metadata.get("language_info") or {}).get("name")
        or (metadata.get("kernelspec") or {}).get("language")
        or "python"
    )
    kinds: dict[str, CellKind] = {"python": "python", "sql": "sql"}
    return kinds.get(str(name).lower(), "unsupported")


def rewrite_line_magics(source: str, call: str) -> str:
    """Python source with each `%pip ...`/`!cmd` line turned into `call(magic, rest, line)`.

    Only used when the cell does not parse as is, so a `%pip` line inside a string is
    left alone; indentation and line numbers are kept.
    """
    out = []
    for number, line in enumerate(source.splitlines(), start=1):
        found = LINE_MAGIC.match(line)
        if found:
            magic = "%pip" if "pip" in found["magic"] else "%sh"
            rest = found["rest"].strip()
            line = f"{found['indent']}{call}({magic!r}, {rest!r}, {number})"
        out.append(line)
    return "\n".join(out)


def python_tree(source: str) -> ast.Module | None:
    """A Python cell's syntax tree, line magics allowed; None when it does not parse."""
    for text in (source, rewrite_line_magics(source, "_")):
        try:
            return ast.parse(text)
        except SyntaxError:
            continue
    return None


def imported_packages(path: Path, text: str | None = None) -> set[str]:
    """Top-level packages a notebook's Python cells import (cells that do not parse are skipped)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    if path.suffix == ".py" and not _MAGIC_IMPORT.search(text):
        # a source notebook is Python as a whole (other cells and magics are `# MAGIC`
        # comments): one parse of the file finds the same imports as one per cell, unless
        # a magic cell (`%python`) imports something
        whole = _parsed(text)
        if whole is not None:
            return _imports(whole)
        # else a cell with a bare line magic, or one that does not parse: cell by cell
    found: set[str] = set()
    for cell in parse(path, text):
        if cell.kind != "python" or "import" not in cell.source:
            continue  # every import statement spells `import`; most cells have none
        tree = python_tree(cell.source)
        if tree is not None:
            found |= _imports(tree)
    return found


_MAGIC_IMPORT = re.compile(r"^# MAGIC.*\bimport\b", re.MULTILINE)


def _parsed(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):  # ValueError: a NUL character
        return None


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(body: Sequence[ast.AST]) -> Iterator[ast.AST]:
    """Every statement of a body, nested ones included, without visiting expressions: an
    import is always a statement, and expressions are most of a tree's nodes."""
    for node in body:
        yield node
        for name in _BODIES:
            inner = getattr(node, name, None)
            if inner:
                yield from _statements(inner)
