"""Terminal output shared by the CLI and the runners: rich on stderr, data on stdout."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from meshops.errors import InvalidFiles, MeshopsError

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

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
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
