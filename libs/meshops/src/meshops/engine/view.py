"""What a person sees of local runs: live progress, the summary a run ends with, an overview.

Everything prints on a `rich.console.Console` the caller passes in: the CLI gives its stderr
console, tests and JSON output `quiet()`, which writes nowhere.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from meshops import identity
from meshops.console import table
from meshops.engine.scheduler import Node, Outcome, Status

if TYPE_CHECKING:
    from meshops.context import Context
    from meshops.engine.flowrun import RunResult

ICONS = {
    Status.PENDING: "[dim]·[/dim]",
    Status.RUNNING: "[cyan]▶[/cyan]",
    Status.SUCCESS: "[green]✓[/green]",
    Status.FAILED: "[red]✗[/red]",
    Status.TIMEDOUT: "[red]⏱[/red]",
    Status.UPSTREAM_FAILED: "[yellow]⤼[/yellow]",
    Status.EXCLUDED: "[dim]−[/dim]",
}


class _Nowhere(io.StringIO):
    """A text file that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)


def quiet() -> Console:
    """A console that writes nowhere: for tests, JSON output and library callers."""
    return Console(file=_Nowhere(), quiet=True, highlight=False, soft_wrap=True)


class Progress:
    """Live task list while running on a terminal; a line per change otherwise.

    A context manager; `update` is the scheduler's listener.
    """

    def __init__(
        self, console: Console, title: str, nodes: Sequence[Node], *, enabled: bool = True
    ) -> None:
        self.console, self.title, self.enabled = console, title, enabled
        self.rows: dict[str, Outcome] = {n.key: Outcome(n.key, tries=n.tries) for n in nodes}
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=True)
        self.lock = threading.Lock()

    def __enter__(self) -> Progress:
        if self.enabled and self.console.is_terminal:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live.is_started:
            self.live.stop()

    def update(self, outcome: Outcome) -> None:
        with self.lock:
            self.rows[outcome.key] = outcome
            if not self.enabled:
                return
            if self.live.is_started:
                self.live.update(self._render())
            elif outcome.status != Status.PENDING or outcome.retrying:
                self.console.print(line(outcome))

    def _render(self) -> Table:
        view = table("task", "status", "time", title=f"running {self.title}")
        for o in self.rows.values():
            view.add_row(o.key, _status(o), f"{o.seconds:.1f} s")
        return view


def _status(outcome: Outcome) -> str:
    """`▶ running (try 2 of 3)`; a failed try with another one due: `✗ failed (try 1 of 3),
    retrying`. A task that runs once shows no tries."""
    if outcome.retrying:
        return f"{ICONS[Status.FAILED]} failed ({outcome.try_label}), retrying"
    status = f"{ICONS[outcome.status]} {outcome.status.value.lower()}"
    shown = outcome.status == Status.RUNNING or outcome.attempts > 1
    return f"{status} ({outcome.try_label})" if shown and outcome.try_label else status


def line(outcome: Outcome) -> str:
    """The line a change of a task shows when the output is no terminal (CI logs, files):
    `▶ load running (try 2 of 3)`, `✗ load failed (try 1 of 3), retrying: <error>`,
    `✓ load success (4.2 s, try 2 of 3)`."""
    key = escape(outcome.key)
    if outcome.retrying:
        error = f": {escape(outcome.error)}" if outcome.error else ""
        return f"{ICONS[Status.FAILED]} {key} failed ({outcome.try_label}), retrying{error}"
    extra = [f"{outcome.seconds:.1f} s"] if outcome.status.done else []
    if outcome.try_label and (outcome.status == Status.RUNNING or outcome.attempts > 1):
        extra.append(outcome.try_label)
    shown = f" ({', '.join(extra)})" if extra else ""
    return f"{ICONS[outcome.status]} {key} {outcome.status.value.lower()}{shown}"


def summary(result: RunResult) -> Table:
    """The table a run ends with: each task, its status, tries (`2 of 3` for a task that may
    retry), time and the tables it wrote."""
    record = result.record
    view = table(
        "task",
        "status",
        "tries",
        "time",
        "tables written (rows), result, error",
        title=f"{record.flow} · run {record.run_id} · {record.status} in {record.seconds:.1f} s",
    )
    for task in record.tasks:
        written = "\n".join(f"{name} ({rows:,})" for name, rows in task.tables.items())
        status = f"{ICONS[Status(task.status)]} {task.status.lower()}"
        notes = [written] if written else []
        notes += [_expectation(e) for e in task.expectations]
        if task.result:
            notes.append(f"result: {task.result}")
        if task.error:
            notes.append(f"[red]{escape(task.error)}[/red]")
        outcome = result.outcomes.get(task.key)
        tries = f" of {outcome.tries}" if outcome is not None and outcome.tries > 1 else ""
        view.add_row(
            task.key,
            status,
            f"{task.attempts}{tries}",
            f"{task.seconds:.1f} s",
            "\n".join(notes) or "-",
        )
    if result.product_reads:  # where the data products it read came from
        view.caption = "\n".join(f"reads {escape(str(r))}" for r in result.product_reads)
        view.caption_justify = "left"
    return view


def _expectation(found: Mapping[str, Any]) -> str:
    """`expect non_negative_fare on trips_silver: 4,990 passed, 10 dropped`."""
    failed = {"drop": "dropped", "fail": "failed"}.get(found["action"], "warned")
    if found["action"] == "fail" and found["failed"]:
        failed += " (update stopped)"
    return (
        f"expect {found['name']} on {found['dataset']}: {found['passed']:,} passed, "
        f"{found['failed']:,} {failed}"
    )


def overview(results: Sequence[RunResult], ctx: Context) -> Table:
    """One table for several runs: every table written, its rows, and the flow that wrote it."""
    view = table(
        "flow",
        "status",
        "time",
        "table",
        "rows",
        title=f"{len(results)} flow run(s) as {identity.of(ctx).id} (env {ctx.env})",
    )
    for result in results:
        record = result.record
        flow = record.flow.split("/projects/", 1)[-1]
        written = result.tables() or {"-": 0}
        for i, (name, rows) in enumerate(written.items()):
            first = i == 0
            view.add_row(
                flow if first else "",
                record.status if first else "",
                f"{record.seconds:.1f} s" if first else "",
                name,
                f"{rows:,}" if name != "-" else "",
            )
    reads = [f"{r.record.flow} reads {read}" for r in results for read in r.product_reads]
    if reads:  # where the data products the flows read came from
        view.caption = escape("\n".join(reads))
        view.caption_justify = "left"
    return view


def failures(results: Sequence[RunResult]) -> str | None:
    """The one line a failed run ends with: every failed task of every run, with its error
    and log (None: all succeeded). A task skipped because its upstream failed is not
    named: its upstream is."""
    broken = [
        (result.record, task)
        for result in results
        if not result.ok
        for task in result.record.tasks
        if task.error and task.status != "UPSTREAM_FAILED"
    ]
    failed = [result.record for result in results if not result.ok]
    if not failed:
        return None
    if not broken:
        return "; ".join(f"{record.flow}: {record.status.lower()}" for record in failed)
    return "; ".join(
        f"{record.flow}: task {task.key} {task.status.lower()}: {task.error} (log: {task.log})"
        for record, task in broken
    )
