"""Terminal output shared by the CLI and the runners: rich on stderr, data on stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

from meshops.errors import InvalidFiles, MeshopsError

NOT_A_TERMINAL_WIDTH = 1000
"""Columns rich lays out for when output is not a terminal (CI logs, pipes): wide enough that
no identifier is ever folded across lines (rich's default, 80, folds long names)."""


class _Console(Console):
    """Rich's console, as wide as a terminal is, or `NOT_A_TERMINAL_WIDTH` when there is none
    and COLUMNS does not say (tables are only as wide as their content). Rich lays out from
    `size` (its `options.max_width`), so that is what answers here; `width` follows it."""

    @property
    def size(self) -> ConsoleDimensions:
        found = super().size
        if self.is_terminal or os.environ.get("COLUMNS") or self._width is not None:
            return found
        return ConsoleDimensions(NOT_A_TERMINAL_WIDTH, found.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    @property
    def width(self) -> int:
        return self.size.width

    @width.setter
    def width(self, value: int) -> None:
        self._width = value


def make(*, stderr: bool = False) -> Console:
    """A console as the CLI's two are made (COLUMNS, when set, is read here, once)."""
    return _Console(stderr=stderr, highlight=False, soft_wrap=True)


err = make(stderr=True)
out = make()

P = ParamSpec("P")
R = TypeVar("R")


def table(*columns: str, title: str | None = None) -> Table:
    """A table whose long names wrap instead of being cut (names are what users copy)."""
    out_table = Table(title=title, title_justify="left")
    for column in columns:
        out_table.add_column(column, overflow="fold")
    return out_table


def fail(exc: MeshopsError) -> None:
    """Print problems, then one line that says what to do."""
    if isinstance(exc, InvalidFiles):
        for problem in exc.problems:
            err.print(f"[red]✗[/red] {escape(str(problem))}")
        files = len({p.file for p in exc.problems})
        err.print(
            f"[bold red]error:[/bold red] {len(exc.problems)} problem(s) in {files} file(s); "
            "fix them and run `meshops validate`"
        )
    else:
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a MeshopsError into its message and exit code (1 failure, 2 invalid input)."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except MeshopsError as exc:
            fail(exc)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def emit_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, never styled or wrapped."""
    sys.stdout.write(_json(data) + "\n")


def _json(data: Any) -> str:
    """Indented JSON; orjson writes it some 20 times faster than the standard library
    (which encodes indented output in pure Python), with the same layout."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(data, default=str, option=option).decode()


def emit_json_items(items: Iterable[Any]) -> None:
    """A JSON list written item by item, byte for byte what `emit_json(list(items))` writes,
    without holding the whole document (a plan of thousands of jobs) in memory."""
    first = True
    for item in items:
        text = _json(item).replace("\n", "\n  ")
        sys.stdout.write(("[\n  " if first else ",\n  ") + text)
        first = False
    sys.stdout.write("[]\n" if first else "\n]\n")
