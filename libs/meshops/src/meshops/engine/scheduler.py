"""Run a DAG of tasks as the Jobs service does: depends_on, run_if, retries, timeouts.

Independent tasks run concurrently in threads (they share one Spark session). A
task that times out is interrupted through a callback and abandoned; its thread
cannot hold a slot. Outcomes use the Jobs API's result states.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from graphlib import TopologicalSorter

# Databricks' -1 means "retry forever"; locally that would never end a broken run
UNLIMITED_RETRIES = 10


class Status(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMEDOUT = "TIMEDOUT"
    UPSTREAM_FAILED = "UPSTREAM_FAILED"
    EXCLUDED = "EXCLUDED"

    @property
    def done(self) -> bool:
        return self not in (Status.PENDING, Status.RUNNING)

    @property
    def ran(self) -> bool:
        return self in (Status.SUCCESS, Status.FAILED, Status.TIMEDOUT)

    @property
    def succeeded(self) -> bool:
        """Excluded tasks count as successful for their dependents (Jobs semantics)."""
        return self in (Status.SUCCESS, Status.EXCLUDED)

    @property
    def failed(self) -> bool:
        return self in (Status.FAILED, Status.TIMEDOUT, Status.UPSTREAM_FAILED)


@dataclass(frozen=True)
class Node:
    """One task as the scheduler needs it."""

    key: str
    depends_on: tuple[str, ...] = ()
    run_if: str = "ALL_SUCCESS"
    max_retries: int = 0
    min_retry_interval_millis: int = 0
    retry_on_timeout: bool = False
    timeout_seconds: int = 0

    @property
    def tries(self) -> int:
        """How many times the task may run: once plus its retries."""
        return 1 + (UNLIMITED_RETRIES if self.max_retries < 0 else self.max_retries)


def try_label(attempt: int, tries: int) -> str:
    """`try 2 of 3`: how runs and task logs name an attempt of a task that may retry."""
    return f"try {attempt} of {tries}"


@dataclass
class Outcome:
    key: str
    status: Status = Status.PENDING
    attempts: int = 0
    tries: int = 1
    """How many attempts the task may have (`Node.tries`)."""
    started: float | None = None
    ended: float | None = None
    error: str = ""
    details: str = ""

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started if self.started else 0.0

    @property
    def retrying(self) -> bool:
        """An attempt failed and another one is due."""
        return self.status == Status.PENDING and self.attempts > 0

    @property
    def try_label(self) -> str:
        """`try 2 of 3` for a task that may retry; "" for one that runs once."""
        return try_label(self.attempts, self.tries) if self.tries > 1 else ""


def decide(run_if: str, upstream: Sequence[Status]) -> Status | None:
    """None if the task runs, else the status it is skipped with (Jobs API rules)."""
    if not upstream:
        return None
    if all(s == Status.EXCLUDED for s in upstream):
        return Status.EXCLUDED
    rules: dict[str, tuple[bool, Status]] = {
        "ALL_SUCCESS": (all(s.succeeded for s in upstream), Status.UPSTREAM_FAILED),
        "AT_LEAST_ONE_SUCCESS": (any(s.succeeded for s in upstream), Status.UPSTREAM_FAILED),
        "NONE_FAILED": (
            not any(s.failed for s in upstream) and any(s.ran for s in upstream),
            Status.UPSTREAM_FAILED,
        ),
        "ALL_DONE": (True, Status.UPSTREAM_FAILED),
        "AT_LEAST_ONE_FAILED": (any(s.failed for s in upstream), Status.EXCLUDED),
        "ALL_FAILED": (all(s.failed for s in upstream), Status.EXCLUDED),
    }
    runs, otherwise = rules[run_if]
    return None if runs else otherwise


def critical_first(nodes: Sequence[Node]) -> list[Node]:
    """`nodes` in the order free slots go to ready tasks: the longest chain of dependents
    first (then as declared), so with fewer workers than ready tasks a task others wait for
    never queues behind a leaf: a flow ends sooner when its critical path starts first.
    Iterative (a job may chain a thousand tasks); `depends_on` is checked acyclic before."""
    dependents: dict[str, list[str]] = {n.key: [] for n in nodes}
    for node in nodes:
        for upstream in node.depends_on:
            dependents.setdefault(upstream, []).append(node.key)
    chain: dict[str, int] = {}
    # dependents before the tasks they wait for: each chain is known when it is needed
    for key in TopologicalSorter(dependents).static_order():
        chain[key] = 1 + max((chain[d] for d in dependents.get(key, ())), default=0)
    order = {n.key: i for i, n in enumerate(nodes)}
    return sorted(nodes, key=lambda n: (-chain[n.key], order[n.key]))


class TaskFailed(Exception):
    def __init__(self, line: str, details: str = "") -> None:
        super().__init__(line)
        self.details = details


Execute = Callable[[Node, int], None]
Listener = Callable[[Outcome], None]


@dataclass
class Scheduler:
    """Runs `nodes` by calling `execute(node, attempt)`; raises TaskFailed (or anything) to fail."""

    nodes: Sequence[Node]
    execute: Execute
    interrupt: Callable[[Node, threading.Thread], None] = lambda node, thread: None
    max_workers: int = 2
    listener: Listener = lambda outcome: None
    outcomes: dict[str, Outcome] = field(init=False)

    def __post_init__(self) -> None:
        self.outcomes = {n.key: Outcome(n.key, tries=n.tries) for n in self.nodes}
        self._done: queue.Queue[tuple[str, int, BaseException | None]] = queue.Queue()

    def run(self) -> Mapping[str, Outcome]:
        nodes = {n.key: n for n in critical_first(self.nodes)}
        running: dict[str, tuple[threading.Thread, int, float | None]] = {}
        not_before: dict[str, float] = {}
        while not all(o.status.done for o in self.outcomes.values()):
            self._skip_or_start(nodes, running, not_before)
            self._collect(nodes, running, not_before)
        return self.outcomes

    def _skip_or_start(
        self,
        nodes: Mapping[str, Node],
        running: dict[str, tuple[threading.Thread, int, float | None]],
        not_before: Mapping[str, float],
    ) -> None:
        changed = True
        while changed:  # skipping a task can settle its dependents at once
            changed = False
            for node in nodes.values():
                outcome = self.outcomes[node.key]
                if outcome.status != Status.PENDING:
                    continue
                upstream = [self.outcomes[d].status for d in node.depends_on]
                if not all(s.done for s in upstream):
                    continue
                skip = decide(node.run_if, upstream)
                if skip is not None:
                    outcome.status, outcome.started, outcome.ended = skip, None, None
                    self.listener(outcome)
                    changed = True
                    continue
                if len(running) >= self.max_workers or not_before.get(node.key, 0) > time.time():
                    continue
                self._start(node, running)

    def _start(
        self, node: Node, running: dict[str, tuple[threading.Thread, int, float | None]]
    ) -> None:
        outcome = self.outcomes[node.key]
        outcome.attempts += 1
        outcome.status = Status.RUNNING
        outcome.started = outcome.started or time.time()
        attempt = outcome.attempts

        def work() -> None:
            try:
                self.execute(node, attempt)
            except BaseException as exc:  # the task's failure is reported, never raised here
                self._done.put((node.key, attempt, exc))
            else:
                self._done.put((node.key, attempt, None))

        thread = threading.Thread(target=work, name=f"task-{node.key}", daemon=True)
        deadline = time.time() + node.timeout_seconds if node.timeout_seconds else None
        running[node.key] = (thread, attempt, deadline)
        self.listener(outcome)
        thread.start()

    def _collect(
        self,
        nodes: Mapping[str, Node],
        running: dict[str, tuple[threading.Thread, int, float | None]],
        not_before: dict[str, float],
    ) -> None:
        deadlines = [d for _, _, d in running.values() if d] + [
            t for t in not_before.values() if t > time.time()
        ]
        wait = max(0.0, min(deadlines) - time.time()) if deadlines else 0.5
        try:
            key, attempt, error = self._done.get(timeout=min(wait, 0.5) if running else 0.05)
        except queue.Empty:
            self._expire(nodes, running, not_before)
            return
        if key not in running or running[key][1] != attempt:
            return  # an abandoned (timed-out) attempt finished late
        del running[key]
        if error is None:
            self._finish(self.outcomes[key], Status.SUCCESS)
        else:
            self._failed(nodes[key], error, Status.FAILED, not_before)

    def _expire(
        self,
        nodes: Mapping[str, Node],
        running: dict[str, tuple[threading.Thread, int, float | None]],
        not_before: dict[str, float],
    ) -> None:
        now = time.time()
        for key, (thread, _, deadline) in list(running.items()):
            if deadline is not None and now >= deadline:
                del running[key]
                node = nodes[key]
                self.interrupt(node, thread)
                error = TaskFailed(f"timed out after {node.timeout_seconds} s (timeout_seconds)")
                self._failed(node, error, Status.TIMEDOUT, not_before)

    def _failed(
        self, node: Node, error: BaseException, status: Status, not_before: dict[str, float]
    ) -> None:
        outcome = self.outcomes[node.key]
        outcome.error = str(error) or type(error).__name__
        outcome.details = getattr(error, "details", "")
        retryable = status != Status.TIMEDOUT or node.retry_on_timeout
        if retryable and outcome.attempts < node.tries:
            outcome.status = Status.PENDING
            not_before[node.key] = time.time() + node.min_retry_interval_millis / 1000
            self.listener(outcome)
            return
        self._finish(outcome, status)

    def _finish(self, outcome: Outcome, status: Status) -> None:
        outcome.status = status
        outcome.ended = time.time()
        if status == Status.SUCCESS:
            outcome.error, outcome.details = "", ""
        self.listener(outcome)


def result_state(outcomes: Iterable[Outcome], leaves: Iterable[str]) -> str:
    """SUCCESS, SUCCESS_WITH_FAILURES (a failure, but every leaf succeeded) or FAILED."""
    by_key = {o.key: o for o in outcomes}
    if all(o.status.succeeded for o in by_key.values()):
        return "SUCCESS"
    if all(by_key[k].status.succeeded for k in leaves):
        return "SUCCESS_WITH_FAILURES"
    return "FAILED"
