"""Per-task output: what a task prints goes to its own log file, as in a job run's task page.

Tasks run in threads of one process, so `sys.stdout` is shared; a router sends each
thread's writes to the log of the task it runs and everything else to the terminal.

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


class _Router:
    """A stand-in for sys.stdout/sys.stderr that writes to the calling thread's task log."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.local = threading.local()
        self.encoding = getattr(fallback, "encoding", "utf-8")

    def _target(self) -> TextIO:
        return getattr(self.local, "stream", None) or self.fallback

    def write(self, text: str) -> int:
        self._target().write(redact(text) if isinstance(text, str) else text)
        return len(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()

    def fileno(self) -> int:
        return self.fallback.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


_lock = threading.Lock()


def _router(name: str) -> _Router:
    with _lock:
        current = getattr(sys, name)
        if not isinstance(current, _Router):
            current = _Router(current)
            setattr(sys, name, current)
        return current


@contextmanager
def task_output(log: Path) -> Iterator[Path]:
    """Send this thread's stdout and stderr to `log` while the block runs."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out, err = _router("stdout"), _router("stderr")
    with log.open("a", encoding="utf-8") as stream:
        out.local.stream = stream
        err.local.stream = stream
        try:
            yield log
        finally:
            out.local.stream = None
            err.local.stream = None
