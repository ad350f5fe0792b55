"""Per-task output: what a task prints goes to its own log file, as in a job run's task page.

Tasks run in threads of one process, so `sys.stdout` is shared; a router sends each
thread's writes to the log of the task it runs (threads a task starts write to its log too)
and everything else to the terminal. What bypasses `sys.stdout`/`sys.stderr` (the JVM's own
log lines, subprocesses a notebook starts without capturing them) is not a task's output, as
on Databricks, where those go to the driver's logs.

Secret values (what `dbutils.secrets` handed out, the workspace credentials taken from the
environment for the run) are replaced by `[REDACTED]` in everything a task writes, as
Databricks does in a job run's output; `redact` does the same for results and run records.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

REDACTED = "[REDACTED]"
_MIN_SECRET = 3  # shorter values would redact ordinary text; Databricks redacts them too

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Redact `value` (and each of its lines) from now on, in this process."""
    global _pattern
    parts = {value, *(line.strip() for line in value.splitlines())}
    parts = {p for p in parts if len(p) >= _MIN_SECRET}
    with _secrets_lock:
        if parts <= _secrets:
            return
        _secrets.update(parts)
        ordered = sorted(_secrets, key=len, reverse=True)  # the longest value first
        _pattern = re.compile("|".join(map(re.escape, ordered)))


def redact(text: str) -> str:
    """`text` with every registered secret value replaced by `[REDACTED]`."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def redact_value(value: Any) -> Any:
    """A result or task value with secrets redacted in its strings (containers walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        shown = redact(text)
        return value if shown == text else shown.encode()
    return value


class _TaskLog:
    """The open log file of one task; writes after it closed go to the terminal instead."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def write(self, text: str) -> bool:
        """Whether `text` was written (False once the task's log has been closed)."""
        with self.lock:
            if self.stream.closed:
                return False
            self.stream.write(text)
            return True

    def flush(self) -> None:
        with self.lock:
            if not self.stream.closed:
                self.stream.flush()


_task = threading.local()
"""`.log`: the _TaskLog of the task the current thread runs, if any."""
_LOG_ATTRIBUTE = "_meshops_task_log"
"""Set on each thread a task's thread starts: what it prints belongs to that task's log."""


def _current_log() -> _TaskLog | None:
    log: _TaskLog | None = getattr(_task, "log", None)
    if log is None:
        log = getattr(threading.current_thread(), _LOG_ATTRIBUTE, None)
    return log


class _Router:
    """A stand-in for sys.stdout/sys.stderr that writes to the calling thread's task log."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.encoding = getattr(fallback, "encoding", "utf-8")

    def write(self, text: str) -> int:
        shown = redact(text) if isinstance(text, str) else text
        log = _current_log()
        if log is None or not log.write(shown):
            self.fallback.write(shown)
        return len(text)

    def flush(self) -> None:
        log = _current_log()
        if log is not None:
            log.flush()
        else:
            self.fallback.flush()

    def isatty(self) -> bool:
        return _current_log() is None and self.fallback.isatty()

    def fileno(self) -> int:
        return self.fallback.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


_lock = threading.RLock()
_depth = 0
_installed: list[tuple[str, _Router]] = []
_thread_start = threading.Thread.start


def _start_in_task(thread: threading.Thread) -> None:
    """`Thread.start` while output is routed: a thread a task starts writes to the task's log,
    as a notebook's ThreadPoolExecutor prints into its cell on Databricks."""
    log = _current_log()
    if log is not None and getattr(thread, _LOG_ATTRIBUTE, None) is None:
        setattr(thread, _LOG_ATTRIBUTE, log)
    _thread_start(thread)


def _route(name: str) -> None:
    """Make sys.<name> a router (again, if something replaced it since)."""
    current = getattr(sys, name)
    if not isinstance(current, _Router):
        router = _Router(current)
        setattr(sys, name, router)
        _installed.append((name, router))


@contextmanager
def routed() -> Iterator[None]:
    """Route sys.stdout and sys.stderr per thread while the block runs; restored after.

    Re-entrant (counted): the outermost block installs the routers and the thread-start hook
    and, at its end, puts back what they replaced (unless something replaced them since).
    """
    global _depth
    with _lock:
        if _depth == 0:
            threading.Thread.start = _start_in_task  # type: ignore[method-assign,assignment]
        _depth += 1
        _route("stdout")
        _route("stderr")
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                threading.Thread.start = _thread_start  # type: ignore[method-assign]
                for name, router in reversed(_installed):
                    if getattr(sys, name) is router:
                        setattr(sys, name, router.fallback)
                _installed.clear()


@contextmanager
def task_output(log: Path) -> Iterator[Path]:
    """Send this thread's stdout and stderr, and those of threads it starts, to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with routed(), log.open("a", encoding="utf-8") as stream:
        task_log = _TaskLog(stream)
        _task.log = task_log
        try:
            yield log
        finally:
            _task.log = None
            task_log.flush()
