"""Databricks notebook source files: cells, and the packages a notebook imports.

A Databricks source file starts with `# Databricks notebook source`; cells are
separated by `# COMMAND ----------`; magic cells have every line prefixed with
`# MAGIC`. Anything else is a plain Python file: one cell.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HEADER = "# Databricks notebook source"
SEPARATOR = "# COMMAND ----------"
MAGIC = "# MAGIC"
CellKind = Literal["python", "sql", "md", "pip", "run", "unsupported"]


@dataclass(frozen=True)
class Cell:
    kind: CellKind
    source: str
    line: int  # 1-based line of the cell's first source line in the file
    magic: str = ""


def parse(path: Path) -> list[Cell]:
    """Cells of a notebook; a plain .py file is one Python cell."""
    text = path.read_text(encoding="utf-8")
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
        first = next(i for i, ln in enumerate(stripped) if ln.strip())
        head = stripped[first].strip()
        magic = head.split()[0] if head.startswith("%") else ""
        rest = "\n".join([head[len(magic) :].strip(), *stripped[first + 1 :]])
        kinds: dict[str, CellKind] = {
            "%md": "md",
            "%sql": "sql",
            "%pip": "pip",
            "%run": "run",
            "%python": "python",
        }
        if magic in kinds:
            return Cell(kinds[magic], rest, start + first, magic)
        return Cell("unsupported", "\n".join(stripped), start + first, magic or "%?")
    return Cell("python", "\n".join(lines), start)


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a notebook's Python cells import (cells that do not parse are skipped)."""
    found: set[str] = set()
    for cell in parse(path):
        if cell.kind != "python":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found
