"""`try 2 of 3`: how a task that may retry is shown, without Spark (scheduler and view only)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from meshops.engine import view
from meshops.engine.scheduler import UNLIMITED_RETRIES, Node, Outcome, Scheduler, Status, TaskFailed

pytestmark = pytest.mark.unit


def test_tries_are_one_plus_the_retries() -> None:
    assert Node("a").tries == 1
    assert Node("a", max_retries=2).tries == 3
    assert Node("a", max_retries=-1).tries == UNLIMITED_RETRIES + 1  # "forever", capped locally


def test_each_change_is_one_line_when_output_is_no_terminal() -> None:
    shown = io.StringIO()
    console = Console(file=shown, force_terminal=False, width=200)

    def execute(node: Node, attempt: int) -> None:
        if node.key == "flaky" and attempt == 1:
            raise TaskFailed("flaky.py:3: RuntimeError: no")

    nodes = [Node("flaky", max_retries=2), Node("once", ("flaky",))]
    with view.Progress(console, "f", nodes) as progress:
        outcomes = Scheduler(nodes, execute, listener=progress.update).run()
    assert (outcomes["flaky"].attempts, outcomes["flaky"].try_label) == (2, "try 2 of 3")
    lines = [
        line.split(" (")[0] if "success" in line else line for line in shown.getvalue().splitlines()
    ]
    assert lines == [
        "▶ flaky running (try 1 of 3)",
        "✗ flaky failed (try 1 of 3), retrying: flaky.py:3: RuntimeError: no",
        "▶ flaky running (try 2 of 3)",
        "✓ flaky success",
        "▶ once running",
        "✓ once success",
    ]
    assert shown.getvalue().splitlines()[3].endswith(" s, try 2 of 3)")


def test_the_live_view_shows_the_try_too() -> None:
    running = Outcome("flaky", Status.RUNNING, attempts=2, tries=3)
    assert view._status(running).endswith("running (try 2 of 3)")
    retry = Outcome("flaky", Status.PENDING, attempts=1, tries=3, error="no")
    assert view._status(retry).endswith("failed (try 1 of 3), retrying")
    assert view._status(Outcome("once", Status.RUNNING, attempts=1)).endswith("running")
